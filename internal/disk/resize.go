package disk

import "fmt"

// growAlign is the unit by which Resize moves partitions.
const growAlign = 1 << 20

// Resize returns t fitted to a disk of newDiskSize bytes; t is not changed.
//
// A GPT's backup entries and header move to the new end of the disk and
// LastUsableLBA follows them. If grow is a partition's Number (0 is none) and
// the disk is larger, the partition grows by the size difference rounded down
// to a MiB, and every partition that starts after it moves right by that same
// amount, keeping its size and order: a recovery partition after C: stays at
// the end of the disk. On an MBR, an extended partition after grow moves with
// its logical partitions, and one holding grow (a logical) grows with it; the
// growth stops at the MBR's 2^32-sector limit (with a warning). Growing an
// extended partition itself is an error.
//
// If the partitions do not fit on newDiskSize, the error is a *TooSmallError
// saying how many bytes they need. The result's Warnings hold only what
// Resize has to say.
func (t *Table) Resize(newDiskSize int64, grow int) (*Table, error) {
	n := t.clone()
	n.DiskSize, n.Warnings, n.moveFrom, n.moveBy = newDiskSize, nil, 0, 0
	ss := int64(t.SectorSize)
	if t.Type == "none" {
		return n, nil
	}
	if grow != 0 {
		g := n.partition(grow)
		switch {
		case g == nil:
			return nil, fmt.Errorf("no partition %d to grow", grow)
		case g.Extended:
			return nil, fmt.Errorf("partition %d is an extended partition; grow a logical partition instead", grow)
		}
		var shift int64
		if newDiskSize > t.DiskSize {
			shift = (newDiskSize - t.DiskSize) / growAlign * growAlign
		}
		gStart := g.Start
		moves := func(p *Partition) bool { return p.Start > gStart }
		grows := func(p *Partition) bool {
			return p.Number == grow || p.Extended && p.Start <= gStart && gStart < p.End()
		}
		if t.Type == "mbr" {
			// Keep every partition that changes below 2^32 sectors.
			limit := (int64(1) << 32) * ss
			for i := range n.Partitions {
				if p := &n.Partitions[i]; moves(p) || grows(p) {
					shift = min(shift, max(limit-p.End(), 0)/growAlign*growAlign)
				}
			}
			if want := (newDiskSize - t.DiskSize) / growAlign * growAlign; shift < want {
				n.Warnings = append(n.Warnings, fmt.Sprintf("MBR addresses at most 2^32 sectors: partition %d grows by %d bytes, not %d", grow, shift, want))
			}
		}
		for i := range n.Partitions {
			switch p := &n.Partitions[i]; {
			case moves(p):
				p.Start += shift
			case grows(p):
				p.Size += shift
			}
		}
		if n.mbr != nil {
			for i := range n.mbr.ebrs {
				if b := &n.mbr.ebrs[i]; int64(b.lba)*ss > gStart {
					b.lba += uint64(shift / ss)
				}
			}
		}
		n.moveFrom, n.moveBy = g.End()-shift, shift
	}

	var need int64 // bytes the partitions and table need
	for _, p := range n.Partitions {
		need = max(need, p.End())
	}
	if n.mbr != nil {
		for _, b := range n.mbr.ebrs {
			need = max(need, int64(b.lba+1)*ss)
		}
	}
	if g := n.GPT; g != nil {
		// The backup entries and header keep their distance to the usable area.
		og := t.GPT
		tail := int64(og.BackupHeaderLBA-og.LastUsableLBA) * ss
		need = max(need, int64(og.FirstUsableLBA)*ss) + tail
		if newDiskSize/ss*ss < need {
			return nil, &TooSmallError{Need: need, Have: newDiskSize}
		}
		g.BackupHeaderLBA = uint64(newDiskSize/ss - 1)
		g.BackupEntriesLBA = g.BackupHeaderLBA - (og.BackupHeaderLBA - og.BackupEntriesLBA)
		g.LastUsableLBA = g.BackupHeaderLBA - (og.BackupHeaderLBA - og.LastUsableLBA)
	} else if newDiskSize < need {
		return nil, &TooSmallError{Need: need, Have: newDiskSize}
	}
	if _, err := n.Encode(); err != nil {
		return nil, err
	}
	return n, nil
}

// NewOffset returns where the byte at offset off of the disk a table was
// resized from belongs on the disk the resized table t describes: bytes up to
// the end of the grown partition stay where they were, later bytes move with
// the partitions after it. For a table not made by Resize with a partition to
// grow, it returns off.
func (t *Table) NewOffset(off int64) int64 {
	if t.moveBy != 0 && off >= t.moveFrom {
		return off + t.moveBy
	}
	return off
}
