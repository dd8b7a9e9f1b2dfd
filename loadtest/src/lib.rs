//! Load generator over the real protocols (issue 7).
