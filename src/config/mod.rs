//! Configuration as Mender Monitor keeps it: check files in monitor.d and config.sh, read as
//! data (never executed), with errors that name file and line.

pub mod check;
pub mod file;
pub mod layout;
pub mod settings;
pub mod shell;
pub mod store;
