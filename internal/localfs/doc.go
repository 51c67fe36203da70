// Package localfs is the local filesystem's side of file metadata: the archiver reads
// a file's metadata into a repo.Node with ReadNode, and the restorer brings it back
// with Create (for special files) and ApplyMetadata. It also holds the helpers that
// let both sides handle sparse files: SeekData and SeekHole to skip holes when
// reading, and WriteSparse to leave holes when writing.
//
// On Linux every field of a Node is read and restored: type, permission bits with
// setuid, setgid and sticky, owner (numeric, with cached names), times in
// nanoseconds, inode, device and link count, device numbers, symlink targets as raw
// bytes, and every extended attribute, which includes POSIX ACLs
// (system.posix_acl_access and system.posix_acl_default). On Windows only what
// os.FileInfo gives is read (type, mode bits, size, times) and restored (mode bits,
// times, symlinks); there are no owners or extended attributes.
//
// The package does not read or write file content and never walks directories.
package localfs
