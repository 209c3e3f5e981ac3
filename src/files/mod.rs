//! The files service: the access decision and the upload over a
//! [`Storage`] (the local folder first), atomic verified writes, and the
//! one name validator every door and the client share.

pub mod case;
pub mod digest;
pub mod digests;
pub mod entry;
pub mod local;
mod make;
mod pages;
pub use pages::{Listing, Pages};
pub mod name;
pub mod object;
pub mod part;
pub mod pipe;
pub mod pseudo;
pub mod readbuf;
mod reserve;
pub mod resumable;
pub mod search;
pub mod service;
pub mod shown;
pub mod splice;
pub mod storage;
pub mod turns;
pub mod upload;
mod whole;
mod writeback;

pub use local::LocalDisk;
pub use name::{NameError, RelPath};
pub use part::{FinishError, PartFile};
pub use service::Files;
pub use storage::Storage;
pub use upload::{BodySource, Broke, OnBreak, Pushing, SocketBody, Upload, UploadOptions};

/// What of the stored files is served.
#[derive(Debug, Clone, Default)]
pub struct Showing {
    /// Whether names starting with a dot are served (see [`shown`]).
    pub hidden: bool,
    /// The server's own files and folders, never served wherever they are.
    pub private: Vec<std::path::PathBuf>,
}

/// The storage `ferry serve` keeps its files in: the bucket `bucket` when
/// one is named, else the folder `root` on this machine's disk, with what
/// `showing` keeps out taken out. Storage is chosen here, and no door
/// knows which it got.
pub fn open_storage(
    root: &std::path::Path,
    bucket: Option<&object::StoreUrl>,
    showing: &Showing,
) -> std::io::Result<std::sync::Arc<dyn Storage>> {
    let store: std::sync::Arc<dyn Storage> = match bucket {
        Some(url) => std::sync::Arc::new(object::ObjectStorage::open(url)?),
        None => {
            let mut disk = LocalDisk::open(root)?;
            disk.fence(&showing.private);
            std::sync::Arc::new(disk)
        }
    };
    Ok(if showing.hidden {
        store
    } else {
        std::sync::Arc::new(shown::Shown::new(store))
    })
}

/// A files operation that failed, with a message fit for the peer.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// A name broke the rules.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The access decision said no.
    #[error(transparent)]
    Denied(#[from] crate::access::Denied),
    /// Nothing there.
    #[error("{0}")]
    NotFound(String),
    /// Not allowed (outside the root, not a regular file, …).
    #[error("{0}")]
    Forbidden(String),
    /// Already there.
    #[error("{0}")]
    Exists(String),
    /// Needed a folder.
    #[error("{0}")]
    NotADirectory(String),
    /// Needed a file.
    #[error("{0}")]
    IsADirectory(String),
    /// Folder not empty.
    #[error("{0}")]
    NotEmpty(String),
    /// Held by another transfer.
    #[error("{0}")]
    Busy(String),
    /// Over a limit.
    #[error("{0}")]
    TooLarge(String),
    /// Storage failed.
    #[error("{0}")]
    Io(String),
    /// The storage cannot be reached now (object storage away or
    /// failing); trying again later may work.
    #[error("{0}")]
    Unavailable(String),
    /// Received bytes do not match the sender's digest.
    #[error("{0}")]
    Checksum(String),
    /// A transfer ended with the wrong number of bytes.
    #[error("{0}")]
    Incomplete(String),
    /// A lock was poisoned.
    #[error("internal error")]
    Internal,
}

impl FilesError {
    /// Maps an I/O error on `rel` to the closest stable code.
    pub fn from_io(rel: &RelPath, e: std::io::Error) -> FilesError {
        use std::io::ErrorKind as K;
        // An error ferry made itself says what happened in its own words.
        if e.get_ref().is_some() {
            let text = format!("{rel}: {e}");
            return match e.kind() {
                K::IsADirectory => FilesError::IsADirectory(text),
                K::PermissionDenied => FilesError::Forbidden(text),
                K::FileTooLarge => FilesError::TooLarge(text),
                _ => FilesError::Io(text),
            };
        }
        match e.kind() {
            K::NotFound => FilesError::NotFound(format!("{rel} does not exist")),
            K::NotADirectory => FilesError::NotFound(format!("{rel} does not exist")),
            K::PermissionDenied => FilesError::Forbidden(format!("{rel}: permission denied")),
            K::AlreadyExists => FilesError::Exists(format!("{rel} exists")),
            K::DirectoryNotEmpty => {
                FilesError::NotEmpty(format!("{rel} is not empty (use recursive removal)"))
            }
            K::IsADirectory => FilesError::IsADirectory(format!("{rel} is a folder")),
            // What opening a socket gives.
            _ if e.raw_os_error() == Some(libc::ENXIO) => {
                FilesError::Forbidden(format!("{rel} is not a regular file"))
            }
            // A loop of links leads nowhere.
            _ if e.raw_os_error() == Some(libc::ELOOP) => {
                FilesError::NotFound(format!("{rel} is a loop of links"))
            }
            _ => FilesError::Io(format!("{rel}: {e}")),
        }
    }
}
impl From<FinishError> for FilesError {
    fn from(e: FinishError) -> Self {
        match e {
            FinishError::Exists => FilesError::Exists("target appeared during the upload".into()),
            FinishError::Io(e) => FilesError::Io(e.to_string()),
            e @ FinishError::Checksum { .. } => FilesError::Checksum(e.to_string()),
            e @ FinishError::Size { .. } => FilesError::Incomplete(e.to_string()),
        }
    }
}
