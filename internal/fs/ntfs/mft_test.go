package ntfs

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeRunlist(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    []byte
		start int64
		want  []run
		err   string
	}{
		{"empty", []byte{0}, 0, nil, ""},
		{"no terminator", nil, 0, nil, ""},
		{"one run", []byte{0x21, 0x18, 0x34, 0x56, 0}, 0, []run{{0, 0x5634, 0x18}}, ""},
		{"relative offsets", []byte{0x11, 0x30, 0x60, 0x21, 0x10, 0x00, 0x01, 0}, 0,
			[]run{{0, 0x60, 0x30}, {0x30, 0x160, 0x10}}, ""},
		{"negative offset", []byte{0x11, 0x08, 0x40, 0x11, 0x04, 0xF0, 0}, 0,
			[]run{{0, 0x40, 8}, {8, 0x30, 4}}, ""},
		{"sparse keeps the LCN", []byte{0x11, 0x04, 0x20, 0x01, 0x10, 0x11, 0x02, 0x01, 0}, 0,
			[]run{{0, 0x20, 4}, {4, sparse, 0x10}, {0x14, 0x21, 2}}, ""},
		{"starting VCN", []byte{0x11, 0x02, 0x05, 0}, 100, []run{{100, 5, 2}}, ""},
		{"eight-byte fields", []byte{0x48, 1, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0, 0}, 0, []run{{0, 0xFFFF, 1}}, ""},
		{"no length", []byte{0x10, 0x05, 0}, 0, nil, "bad run header"},
		{"nine-byte length", []byte{0x19, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0}, 0, nil, "bad run header"},
		{"past the end", []byte{0x22, 0x01}, 0, nil, "bad run header"},
		{"zero length", []byte{0x11, 0x00, 0x05, 0}, 0, nil, "run of 0 clusters"},
		{"negative length", []byte{0x18, 0, 0, 0, 0, 0, 0, 0, 0x80, 0}, 0, nil, "clusters at VCN"},
		{"LCN below 0", []byte{0x11, 0x01, 0xF0, 0}, 0, nil, "at LCN -16"},
		{"huge LCN", []byte{0x81, 0x01, 0, 0, 0, 0, 0, 0, 0, 0x7F, 0}, 0, nil, "LCN offset"},
		{"VCN overflow", []byte{0x17, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x17, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0}, 0, nil, "clusters at"},
		{"bad start", []byte{0}, -1, nil, "starting VCN"},
	} {
		got, err := decodeRunlist(tc.in, tc.start)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %v %v, want %v", tc.name, got, err, tc.want)
		}
	}
}

// makeRecord builds an MFT record of size bytes with the given attributes
// (each a complete attribute, its length a multiple of 8) and applies the
// update sequence as a disk would hold it.
func makeRecord(size int, attrs ...[]byte) []byte {
	b := make([]byte, size)
	copy(b, "FILE")
	blocks := size / fixupStride
	binary.LittleEndian.PutUint16(b[4:], 48)               // update sequence offset
	binary.LittleEndian.PutUint16(b[6:], uint16(blocks+1)) // and count
	binary.LittleEndian.PutUint16(b[22:], recordInUse)
	off := (48 + 2*(blocks+1) + 7) / 8 * 8
	binary.LittleEndian.PutUint16(b[20:], uint16(off))
	for _, a := range attrs {
		off += copy(b[off:], a)
	}
	binary.LittleEndian.PutUint32(b[off:], attrEnd)
	binary.LittleEndian.PutUint32(b[24:], uint32(off+8))
	binary.LittleEndian.PutUint32(b[28:], uint32(size))
	// The update sequence number 0x0102; each block's last two bytes are
	// moved into the array.
	binary.LittleEndian.PutUint16(b[48:], 0x0102)
	for i := range blocks {
		end := (i+1)*fixupStride - 2
		copy(b[48+2+2*i:], b[end:end+2])
		binary.LittleEndian.PutUint16(b[end:], 0x0102)
	}
	return b
}

// residentAttr builds a resident attribute.
func residentAttr(typ uint32, name string, value []byte) []byte {
	nameBytes := utf16le(name)
	valOff := (24 + len(nameBytes) + 7) / 8 * 8
	n := (valOff + len(value) + 7) / 8 * 8
	b := make([]byte, n)
	binary.LittleEndian.PutUint32(b, typ)
	binary.LittleEndian.PutUint32(b[4:], uint32(n))
	b[9] = byte(len(nameBytes) / 2)
	binary.LittleEndian.PutUint16(b[10:], 24)
	copy(b[24:], nameBytes)
	binary.LittleEndian.PutUint32(b[16:], uint32(len(value)))
	binary.LittleEndian.PutUint16(b[20:], uint16(valOff))
	copy(b[valOff:], value)
	return b
}

// nonResidentAttr builds a non-resident attribute.
func nonResidentAttr(typ uint32, name string, lowVCN, highVCN, size int64, runlist []byte) []byte {
	nameBytes := utf16le(name)
	runOff := (64 + len(nameBytes) + 7) / 8 * 8
	n := (runOff + len(runlist) + 7) / 8 * 8
	b := make([]byte, n)
	binary.LittleEndian.PutUint32(b, typ)
	binary.LittleEndian.PutUint32(b[4:], uint32(n))
	b[8] = 1
	b[9] = byte(len(nameBytes) / 2)
	binary.LittleEndian.PutUint16(b[10:], 64)
	copy(b[64:], nameBytes)
	binary.LittleEndian.PutUint64(b[16:], uint64(lowVCN))
	binary.LittleEndian.PutUint64(b[24:], uint64(highVCN))
	binary.LittleEndian.PutUint16(b[32:], uint16(runOff))
	for _, off := range []int{40, 48, 56} {
		binary.LittleEndian.PutUint64(b[off:], uint64(size))
	}
	copy(b[runOff:], runlist)
	return b
}

func utf16le(s string) []byte {
	var b []byte
	for _, r := range s {
		b = binary.LittleEndian.AppendUint16(b, uint16(r))
	}
	return b
}

func TestParseRecord(t *testing.T) {
	name := residentAttr(attrVolumeName, "", utf16le("Vol"))
	data := nonResidentAttr(attrData, "", 0, 9, 40000, []byte{0x11, 0x0A, 0x20, 0})
	ads := residentAttr(attrData, "ads", []byte("stream"))
	for _, size := range []int{1024, 4096} {
		b := makeRecord(size, name, data, ads)
		// Block ends hold the update sequence number; their real bytes
		// (here the end of the record's zeros) come back.
		rec, err := parseRecord(bytes.Clone(b))
		if err != nil {
			t.Fatalf("%d: %v", size, err)
		}
		if len(rec.Attrs) != 3 || rec.Flags != recordInUse {
			t.Fatalf("%d: %+v", size, rec)
		}
		if a := rec.find(attrVolumeName, ""); a == nil || decodeUTF16(a.Value) != "Vol" {
			t.Errorf("%d: $VOLUME_NAME %+v", size, a)
		}
		if a := rec.find(attrData, ""); a == nil || !a.NonResident || a.DataSize != 40000 ||
			!reflect.DeepEqual(a.Runs, []run{{0, 0x20, 0x0A}}) {
			t.Errorf("%d: $DATA %+v", size, a)
		}
		if a := rec.find(attrData, "ads"); a == nil || string(a.Value) != "stream" {
			t.Errorf("%d: $DATA:ads %+v", size, a)
		}

		// A torn write: one block's end lacks the update sequence number.
		torn := bytes.Clone(b)
		torn[size-2]++
		if _, err := parseRecord(torn); err == nil || !strings.Contains(err.Error(), "torn") {
			t.Errorf("%d, torn: %v", size, err)
		}
	}

	good := makeRecord(1024, name, data)
	for _, tc := range []struct {
		what   string
		damage func(b []byte)
	}{
		{"no FILE", func(b []byte) { b[0] = 'B' }},
		{"update sequence count", func(b []byte) { b[6] = 9 }},
		{"update sequence offset", func(b []byte) { b[4] = 0xF0; b[5] = 0x01 }},
		{"attributes offset", func(b []byte) { b[20] = 0xFF; b[21] = 0x03 }},
		{"bytes in use", func(b []byte) { binary.LittleEndian.PutUint32(b[24:], 5000) }},
		{"attribute length 0", func(b []byte) { binary.LittleEndian.PutUint32(b[int(b[20])+4:], 0) }},
		{"attribute past the end", func(b []byte) { binary.LittleEndian.PutUint32(b[int(b[20])+4:], 1<<20) }},
		{"no end marker", func(b []byte) { binary.LittleEndian.PutUint32(b[24:], uint32(b[20])+uint32(len(name))) }},
		{"value past the attribute", func(b []byte) { binary.LittleEndian.PutUint32(b[int(b[20])+16:], 1000) }},
		{"name past the attribute", func(b []byte) { b[int(b[20])+9] = 200 }},
	} {
		b := bytes.Clone(good)
		tc.damage(b)
		if _, err := parseRecord(b); err == nil {
			t.Errorf("%s: no error", tc.what)
		}
	}
	if _, err := parseRecord(make([]byte, 1000)); err == nil {
		t.Error("a record of 1000 bytes: no error")
	}
}

func TestParseAttrList(t *testing.T) {
	entry := func(typ uint32, name string, vcn int64, rec uint64, id uint16) []byte {
		n := (26 + 2*len(name) + 7) / 8 * 8
		b := make([]byte, n)
		binary.LittleEndian.PutUint32(b, typ)
		binary.LittleEndian.PutUint16(b[4:], uint16(n))
		b[6] = byte(len(name))
		b[7] = 26
		copy(b[26:], utf16le(name))
		binary.LittleEndian.PutUint64(b[8:], uint64(vcn))
		binary.LittleEndian.PutUint64(b[16:], rec|7<<48) // a sequence number above
		binary.LittleEndian.PutUint16(b[24:], id)
		return b
	}
	b := append(entry(0x10, "", 0, 40, 0), entry(attrData, "", 0, 40, 3)...)
	b = append(b, entry(attrData, "", 300, 41, 0)...)
	b = append(b, entry(attrData, "ads", 0, 41, 1)...)
	list, err := parseAttrList(b)
	if err != nil {
		t.Fatal(err)
	}
	want := []attrListEntry{{0x10, "", 0, 40, 0}, {attrData, "", 0, 40, 3}, {attrData, "", 300, 41, 0}, {attrData, "ads", 0, 41, 1}}
	if !reflect.DeepEqual(list, want) {
		t.Errorf("%+v, want %+v", list, want)
	}
	for _, bad := range [][]byte{b[:20], append(bytes.Clone(b[:32]), 0xFF, 0xFF)} {
		if _, err := parseAttrList(bad); err == nil {
			t.Errorf("%x: no error", bad)
		}
	}
}
