//! Unit tests of the instance machine: no tmux, no CLI, a fake clock.
