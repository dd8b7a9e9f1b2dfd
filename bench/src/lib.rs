//! Operator bench: the engine against fio on the same disk, in the same run (issue 7).
