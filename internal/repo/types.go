package repo

import "cairn/internal/format"

// The repository's data model, defined by the format package and used by every
// engine through these names, so that only this package touches the codecs.
type (
	ID        = format.ID
	BlobType  = format.BlobType
	Node      = format.Node
	Tree      = format.Tree
	Xattr     = format.Xattr
	RawString = format.RawString
	Snapshot  = format.Snapshot
	Summary   = format.Summary

	Image         = format.Image
	ImageRegion   = format.ImageRegion
	PartitionInfo = format.PartitionInfo
)

// Image region kinds and the size of a chunk list, as in the format package.
const (
	RegionPartition = format.RegionPartition
	RegionGap       = format.RegionGap
	ChunkListMax    = format.ChunkListMax
)

// Blob types and node types, as in the format package.
const (
	DataBlob = format.DataBlob
	TreeBlob = format.TreeBlob

	NodeFile    = format.NodeFile
	NodeDir     = format.NodeDir
	NodeSymlink = format.NodeSymlink
	NodeDev     = format.NodeDev
	NodeCharDev = format.NodeCharDev
	NodeFIFO    = format.NodeFIFO
	NodeSocket  = format.NodeSocket

	KindFile  = format.KindFile
	KindImage = format.KindImage
)

// ParseID parses 64 hex digits.
func ParseID(s string) (ID, error) { return format.ParseID(s) }

// CheckName returns an error unless name is usable as one path element.
func CheckName(name string) error { return format.CheckName(name) }
