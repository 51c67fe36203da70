// Package imager makes image snapshots of disks and partitions and writes them back.
//
// A whole disk is cut into regions: its partitions, and the gaps around them (the
// partition table, boot loaders, unpartitioned space). Each region is cut into
// fixed-size chunks aligned to the region's start, and so to its filesystem's
// blocks. Of a partition with a known filesystem only the bytes the filesystem uses
// and needs are read (internal/fs); a chunk with none of them, or that reads as all
// zeros, is stored as a null id and restores as zeros. A partition with no known
// filesystem, or with one too damaged to read, is read whole (with a warning for
// the damaged one): what cannot be known to be unused is stored.
//
// Chunks are stored in blobs that each hold a span of them (span.go): a first image
// stores spans of up to SpanSize bytes, which compress almost as well as the whole
// disk as one stream. A later image of the same disk compares each group of chunks
// with the parent image (parent.go): an unchanged group (by its digest in the
// parent's chunk list) names the parent's blobs again without reading them; a
// changed one is compared chunk by chunk, and only the changed chunks are stored,
// in spans as large as their runs allow, so what an incremental image adds follows
// what changed on the disk, not the size of a span. Blobs are hashed, deduplicated,
// compressed and sealed by the repository like any file data.
package imager
