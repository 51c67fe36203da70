package ntfs

import (
	"errors"
	"fmt"
	"io"
	"sort"
)

// A run maps Len clusters of an attribute's data, starting at virtual cluster
// VCN, to the volume's clusters starting at LCN; LCN is -1 for a sparse run
// (a hole that reads as zeros).
type run struct {
	VCN, LCN, Len int64
}

// sparse is the LCN of a run with no clusters behind it.
const sparse = -1

// maxClusters bounds every cluster number and count: NTFS addresses clusters
// with 64 bits, but no volume has 2^48 of them, and the bound keeps every
// product with a cluster size (at most 2^21) well inside an int64.
const maxClusters = 1 << 48

// decodeRunlist decodes a mapping pairs array, the runs of a non-resident
// attribute, whose first run starts at virtual cluster startVCN.
//
// Each run is a header byte, whose low nibble is the size in bytes of the run
// length and whose high nibble is the size of the LCN offset, then the length
// (unsigned, little-endian) and the offset (signed, little-endian, relative to
// the previous run's LCN). An offset of size 0 marks a sparse run. A header
// byte of 0 ends the list; so does the end of b.
func decodeRunlist(b []byte, startVCN int64) ([]run, error) {
	if startVCN < 0 || startVCN >= maxClusters {
		return nil, fmt.Errorf("ntfs: runlist: starting VCN %d", startVCN)
	}
	var runs []run
	vcn, lcn := startVCN, int64(0)
	for len(b) > 0 && b[0] != 0 {
		lenSize, offSize := int(b[0]&0x0F), int(b[0]>>4)
		b = b[1:]
		if lenSize == 0 || lenSize > 8 || offSize > 8 || lenSize+offSize > len(b) {
			return nil, fmt.Errorf("ntfs: runlist: bad run header %#x", lenSize|offSize<<4)
		}
		length := int64(readUint(b[:lenSize]))
		if length <= 0 || length >= maxClusters || vcn+length > maxClusters {
			return nil, fmt.Errorf("ntfs: runlist: run of %d clusters at VCN %d", length, vcn)
		}
		b = b[lenSize:]
		r := run{VCN: vcn, LCN: sparse, Len: length}
		if offSize > 0 {
			delta := readInt(b[:offSize])
			b = b[offSize:]
			// Both are below 2^48 in absolute value, so the sum cannot
			// overflow before it is checked.
			if delta <= -maxClusters || delta >= maxClusters {
				return nil, fmt.Errorf("ntfs: runlist: LCN offset %d", delta)
			}
			lcn += delta
			if lcn < 0 || lcn+length > maxClusters {
				return nil, fmt.Errorf("ntfs: runlist: run of %d clusters at LCN %d", length, lcn)
			}
			r.LCN = lcn
		}
		runs = append(runs, r)
		vcn += length
	}
	return runs, nil
}

// readUint reads a little-endian unsigned integer of len(b) <= 8 bytes.
func readUint(b []byte) uint64 {
	var x uint64
	for i := len(b) - 1; i >= 0; i-- {
		x = x<<8 | uint64(b[i])
	}
	return x
}

// readInt reads a little-endian two's complement integer of 1 <= len(b) <= 8
// bytes.
func readInt(b []byte) int64 {
	x := readUint(b)
	if shift := 64 - 8*uint(len(b)); shift > 0 {
		return int64(x<<shift) >> shift
	}
	return int64(x)
}

// errHole is returned when data is read at a virtual cluster no run maps.
var errHole = fmt.Errorf("%w: data outside the runlist", errCorrupt)

// runReader reads the data of a non-resident attribute through its runs.
type runReader struct {
	vol      *volume
	runs     []run // sorted by VCN, not overlapping
	dataSize int64 // bytes of data
	initSize int64 // bytes of data written; the rest reads as zeros
}

// newRunReader returns a reader of the data that runs map, checking that they
// are sorted, do not overlap, lie inside the volume and map every cluster of
// dataSize bytes.
func (v *volume) newRunReader(runs []run, dataSize, initSize int64) (*runReader, error) {
	if dataSize < 0 || dataSize/v.clusterSize >= maxClusters {
		return nil, fmt.Errorf("ntfs: data size %d", dataSize)
	}
	if initSize < 0 || initSize > dataSize {
		initSize = dataSize
	}
	runs = append([]run(nil), runs...)
	sort.Slice(runs, func(i, j int) bool { return runs[i].VCN < runs[j].VCN })
	next := int64(0)
	for _, r := range runs {
		if r.VCN != next {
			return nil, fmt.Errorf("ntfs: runlist: run at VCN %d, expected %d", r.VCN, next)
		}
		if r.LCN != sparse && r.LCN+r.Len > v.clusters {
			return nil, fmt.Errorf("ntfs: runlist: clusters %d-%d beyond the volume's %d", r.LCN, r.LCN+r.Len-1, v.clusters)
		}
		next += r.Len
	}
	if need := (dataSize + v.clusterSize - 1) / v.clusterSize; next < need {
		return nil, fmt.Errorf("ntfs: runlist maps %d clusters of %d", next, need)
	}
	return &runReader{vol: v, runs: runs, dataSize: dataSize, initSize: initSize}, nil
}

// ReadAt reads len(p) bytes of the data at off, or fewer and io.EOF at its
// end.
func (rr *runReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("ntfs: negative offset")
	}
	if off >= rr.dataSize {
		return 0, io.EOF
	}
	var err error
	if int64(len(p)) > rr.dataSize-off {
		p, err = p[:rr.dataSize-off], io.EOF
	}
	cs := rr.vol.clusterSize
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		chunk := p[n:]
		if pos >= rr.initSize {
			clear(chunk)
			n = len(p)
			break
		}
		if int64(len(chunk)) > rr.initSize-pos {
			chunk = chunk[:rr.initSize-pos]
		}
		vcn := pos / cs
		i := sort.Search(len(rr.runs), func(i int) bool { return rr.runs[i].VCN+rr.runs[i].Len > vcn })
		if i == len(rr.runs) || rr.runs[i].VCN > vcn {
			return n, errHole
		}
		r := rr.runs[i]
		// Products of a VCN and the cluster size may not fit in an int64
		// (2^48 clusters of 2^21 bytes); offsets from pos do.
		within := pos - vcn*cs // in cluster vcn
		if left := r.VCN + r.Len - vcn; left <= int64(len(chunk))/cs+1 {
			if inRun := left*cs - within; int64(len(chunk)) > inRun {
				chunk = chunk[:inRun]
			}
		}
		if r.LCN == sparse {
			clear(chunk)
		} else if err := readAt(rr.vol.r, chunk, r.LCN*cs+(vcn-r.VCN)*cs+within); err != nil {
			return n, err
		}
		n += len(chunk)
	}
	return n, err
}
