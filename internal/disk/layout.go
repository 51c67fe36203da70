package disk

import "sort"

// Layout returns which bytes of the disk t describes hold the partition
// table, and which lie between partitions.
//
// table: the MBR sector and each EBR; for a GPT, sector 0 up to the end of
// the primary entry array, and the backup entry array up to the end of the
// backup header.
//
// gaps: every byte of the disk that lies in no partition, counting an MBR's
// extended partition as no partition (its EBRs and the space between its
// logical partitions are gaps). Boot loaders live there (GRUB's core.img
// after the MBR, for one). For a "none" table the whole disk is one gap.
//
// Both lists are sorted, merged and clipped to the disk. The table regions of
// a well-formed table lie inside gaps.
func (t *Table) Layout() (table, gaps []Extent) {
	ss := int64(t.SectorSize)
	switch {
	case t.GPT != nil:
		g := t.GPT
		n := int64(g.entrySectors(t.SectorSize))
		table = append(table,
			Extent{0, (int64(g.PrimaryEntriesLBA) + n) * ss},
			Extent{int64(g.BackupEntriesLBA) * ss, n * ss},
			Extent{int64(g.BackupHeaderLBA) * ss, ss})
	case t.mbr != nil:
		table = append(table, Extent{0, ss})
		for _, b := range t.mbr.ebrs {
			table = append(table, Extent{int64(b.lba) * ss, ss})
		}
	}
	table = normalize(table, t.DiskSize)

	var used []Extent
	for _, p := range t.Partitions {
		if !p.Extended {
			used = append(used, Extent{p.Start, p.Size})
		}
	}
	used = normalize(used, t.DiskSize)
	var off int64
	for _, u := range used {
		if u.Off > off {
			gaps = append(gaps, Extent{off, u.Off - off})
		}
		off = u.Off + u.Len
	}
	if off < t.DiskSize {
		gaps = append(gaps, Extent{off, t.DiskSize - off})
	}
	return table, gaps
}

// normalize sorts extents, merges those that touch or overlap, drops empty
// ones and clips them to [0, size).
func normalize(es []Extent, size int64) []Extent {
	sort.Slice(es, func(i, j int) bool { return es[i].Off < es[j].Off })
	var out []Extent
	for _, e := range es {
		if e.Off < 0 {
			e.Len, e.Off = e.Len+e.Off, 0
		}
		e.Len = min(e.Len, size-e.Off)
		if e.Len <= 0 {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Off+out[n-1].Len >= e.Off {
			out[n-1].Len = max(out[n-1].Len, e.Off+e.Len-out[n-1].Off)
			continue
		}
		out = append(out, e)
	}
	return out
}
