// Package imager makes image snapshots of disks and partitions and writes them back.
//
// A whole disk is cut into regions: its partitions, and the gaps around them (the
// partition table, boot loaders, unpartitioned space). Each region is stored as
// fixed-size chunks aligned to the region's start, and so to its filesystem's
// blocks. Of a partition with a known filesystem only the bytes the filesystem uses
// are read (internal/fs); a chunk with none of them, or that reads as all zeros, is
// stored as a null id and restores as zeros. Chunks are hashed, deduplicated,
// compressed and sealed by the repository like any file data, so images dedup
// against each other, against earlier images of the same disk and against files.
package imager
