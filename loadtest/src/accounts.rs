//! The accounts a run delivers to, named by patterns so the same run fits any server:
//! `{i}` is the 1-based number padded to four digits (`user{i}@example.org` →
//! `user0001@example.org`), `{number}` the number unpadded, and in passwords `{user}` the user name.

/// The users and their passwords.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Accounts {
    pub user_pattern: String,
    #[serde(skip)]
    password_pattern: String,
    pub count: u32,
}

impl Accounts {
    /// `count` accounts (at least one).
    pub fn new(user_pattern: &str, password_pattern: &str, count: u32) -> Self {
        Self {
            user_pattern: user_pattern.to_owned(),
            password_pattern: password_pattern.to_owned(),
            count: count.max(1),
        }
    }

    /// The name of account `number` (0-based).
    pub fn user(&self, number: u32) -> String {
        expand(&self.user_pattern, number)
    }

    /// The password of account `number`.
    pub fn password(&self, number: u32) -> String {
        expand(&self.password_pattern, number).replace("{user}", &self.user(number))
    }

    /// The account message `index` goes to: round robin, so every mailbox gets the same mix.
    pub fn owner(&self, index: u64) -> u32 {
        (index % u64::from(self.count)) as u32
    }

    /// How many of the first `messages` go to account `number`.
    pub fn share(&self, number: u32, messages: u64) -> u64 {
        let count = u64::from(self.count);
        messages / count + u64::from(u64::from(number) < messages % count)
    }
}

fn expand(pattern: &str, number: u32) -> String {
    let one_based = u64::from(number) + 1;
    pattern.replace("{i}", &format!("{one_based:04}")).replace("{number}", &one_based.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_expand() {
        let accounts = Accounts::new("user{i}@example.org", "pw-{number}-{user}", 3);
        assert_eq!(accounts.user(0), "user0001@example.org");
        assert_eq!(accounts.password(1), "pw-2-user0002@example.org");
        assert_eq!(accounts.owner(4), 1);
        assert_eq!((0..3).map(|number| accounts.share(number, 10)).collect::<Vec<_>>(), [4, 3, 3]);
    }
}
