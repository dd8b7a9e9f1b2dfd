//! LIST and LSUB matching (RFC 3501 §6.3.8): `*` matches anything, `%` anything but the
//! hierarchy delimiter. Names the engine does not have but that are parents of names it has
//! (`a` for `a/b`) are listed as `\Noselect`, so clients can show the tree.

use std::collections::BTreeMap;

/// The hierarchy delimiter: the engine's names are flat; `/` in them is read as hierarchy.
pub(super) const DELIMITER: char = '/';

/// Patterns longer than this (in characters) are refused: matching costs
/// name length × pattern length, and names are at most 1024 bytes.
pub(super) const PATTERN_CHARACTERS_MAX: usize = 2048;

/// One LIST response line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Listed {
    pub(super) name: String,
    pub(super) attributes: Vec<&'static str>,
}

/// The mailboxes `pattern` (after `reference`) matches among `names`, sorted, with
/// `\HasChildren`/`\HasNoChildren` and `\Noselect` for implied parents.
pub(super) fn list(names: &[String], reference: &str, pattern: &str) -> Vec<Listed> {
    let full_pattern: Vec<char> = reference.chars().chain(pattern.chars()).collect();
    let mut tree: BTreeMap<String, bool> = BTreeMap::new();
    for name in names {
        tree.insert(name.clone(), true);
        let mut parent_end = name.rfind(DELIMITER);
        while let Some(end) = parent_end {
            let parent = &name[..end];
            tree.entry(parent.to_owned()).or_insert(false);
            parent_end = parent.rfind(DELIMITER);
        }
    }
    let has_children = |name: &str| {
        let prefix = format!("{name}{DELIMITER}");
        tree.range(prefix.clone()..).next().is_some_and(|(child, _)| child.starts_with(&prefix))
    };
    tree.iter()
        .filter(|(name, _)| matches(&full_pattern, name))
        .map(|(name, exists)| {
            let mut attributes = Vec::new();
            if !exists {
                attributes.push("\\Noselect");
            }
            attributes.push(if has_children(name) { "\\HasChildren" } else { "\\HasNoChildren" });
            Listed { name: name.clone(), attributes }
        })
        .collect()
}

/// Whether `name` matches `pattern`; INBOX matches case-insensitively (RFC 3501 §5.1).
fn matches(pattern: &[char], name: &str) -> bool {
    let name: Vec<char> = name.chars().collect();
    if wildcard_match(pattern, &name) {
        return true;
    }
    let upper: Vec<char> = pattern.iter().map(char::to_ascii_uppercase).collect();
    name == ['I', 'N', 'B', 'O', 'X'] && wildcard_match(&upper, &name)
}

/// Dynamic programming over (pattern position, name position): linear memory, no
/// backtracking blow-up on patterns like `*a*a*a*b`.
fn wildcard_match(pattern: &[char], name: &[char]) -> bool {
    // reachable[j]: the pattern prefix consumed so far can match name[..j].
    let mut reachable = vec![false; name.len() + 1];
    reachable[0] = true;
    for &symbol in pattern {
        let mut next = vec![false; name.len() + 1];
        match symbol {
            '*' | '%' => {
                let mut open = false;
                for position in 0..=name.len() {
                    open |= reachable[position];
                    next[position] = open;
                    if symbol == '%' && name.get(position) == Some(&DELIMITER) {
                        open = false;
                    }
                }
            }
            literal => {
                for position in 0..name.len() {
                    next[position + 1] = reachable[position] && name[position] == literal;
                }
            }
        }
        reachable = next;
    }
    reachable[name.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[Listed]) -> Vec<&str> {
        list.iter().map(|listed| listed.name.as_str()).collect()
    }

    #[test]
    fn wildcards() {
        let all: Vec<String> = ["INBOX", "Sent", "Work/2024", "Work/2025/Q1", "Archive"].map(String::from).to_vec();
        assert_eq!(
            names(&list(&all, "", "*")),
            vec!["Archive", "INBOX", "Sent", "Work", "Work/2024", "Work/2025", "Work/2025/Q1"]
        );
        assert_eq!(names(&list(&all, "", "%")), vec!["Archive", "INBOX", "Sent", "Work"]);
        assert_eq!(names(&list(&all, "Work/", "%")), vec!["Work/2024", "Work/2025"]);
        assert_eq!(names(&list(&all, "", "Work/*")), vec!["Work/2024", "Work/2025", "Work/2025/Q1"]);
        assert_eq!(names(&list(&all, "", "inbox")), vec!["INBOX"]);
        assert_eq!(names(&list(&all, "", "S%t")), vec!["Sent"]);
        let work = list(&all, "", "Work");
        assert_eq!(work[0].attributes, vec!["\\Noselect", "\\HasChildren"]);
        assert_eq!(list(&all, "", "Sent")[0].attributes, vec!["\\HasNoChildren"]);
    }

    #[test]
    fn hostile_pattern_is_cheap() {
        let name: Vec<char> = "a".repeat(1000).chars().collect();
        let pattern: Vec<char> = "*a".repeat(500).chars().chain("b".chars()).collect();
        assert!(!wildcard_match(&pattern, &name));
    }
}
