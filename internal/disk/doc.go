// Package disk owns what cairn knows about whole disks below the filesystem:
//
//   - block devices and disk image files: Open, OpenWrite, their size, sector
//     size, model and serial, and whether they are in use (MountedPartitions,
//     IsMounted, Holds);
//   - partition tables: ReadTable reads an MBR (with its chain of logical
//     partitions) or a GPT (checking both CRCs, falling back to the backup);
//     Layout says which bytes hold the table and which lie between partitions;
//     Resize fits a table onto a larger disk, growing one partition; Encode
//     gives the bytes that write a table back.
//
// Offsets and sizes are in bytes unless a name ends in LBA; LBAs count sectors
// of the table's SectorSize. Linux specifics live in the _linux.go files; on
// Windows, files and \\.\PhysicalDriveN can be opened, and the rest is stubbed.
package disk
