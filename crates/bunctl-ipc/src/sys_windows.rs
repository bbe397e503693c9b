//! Windows: named pipes from `ipc-transport-pipe` (being written; see issue 4).
