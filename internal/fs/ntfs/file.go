package ntfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// A file is the attributes of one file: those of its base MFT record and,
// if it has an attribute list, those of the extension records it names.
type file struct {
	rec   int64 // the base record's number
	base  *record
	attrs []*attribute
}

// stream is the data of an attribute: a *bytes.Reader (resident), a
// *runReader or a *compressedReader (non-resident).
type stream interface {
	io.ReaderAt
	Size() int64
}

// maxExtensions bounds the extension records one file's attribute list may
// name.
const maxExtensions = 4096

// readFile reads MFT record n, a base record, and the extension records its
// attribute list names.
func (v *volume) readFile(n int64) (*file, error) {
	rec, err := v.readRecord(n)
	if err != nil {
		return nil, err
	}
	if rec.Base&(1<<48-1) != 0 {
		return nil, fmt.Errorf("MFT record %d is an extension of record %d, not a file", n, rec.Base&(1<<48-1))
	}
	return v.loadFile(n, rec)
}

// loadFile gathers the attributes of file n, whose base record is base. With
// an attribute list, they are the attributes it lists, in its order, each
// found by type, name and id in the record the list names; the list is read
// once and extension records are never followed further, so there is no
// loop to fall into.
func (v *volume) loadFile(n int64, base *record) (*file, error) {
	f := &file{rec: n, base: base}
	list := base.find(attrAttributeList, "")
	if list == nil {
		for i := range base.Attrs {
			f.attrs = append(f.attrs, &base.Attrs[i])
		}
		return f, nil
	}
	value, err := v.attrValue(list)
	if err != nil {
		return nil, fmt.Errorf("MFT record %d: attribute list: %w", n, err)
	}
	entries, err := parseAttrList(value)
	if err != nil {
		return nil, fmt.Errorf("MFT record %d: %w", n, err)
	}
	holders := map[int64]*record{n: base}
	for _, e := range entries {
		if e.Type == attrAttributeList {
			continue
		}
		holder, ok := holders[e.Record]
		if !ok {
			if len(holders) > maxExtensions {
				return nil, fmt.Errorf("MFT record %d: attribute list names more than %d records", n, maxExtensions)
			}
			if holder, err = v.readRecord(e.Record); err != nil {
				return nil, err
			}
			if int64(holder.Base&(1<<48-1)) != n {
				return nil, fmt.Errorf("MFT record %d is not an extension of record %d", e.Record, n)
			}
			holders[e.Record] = holder
		}
		var a *attribute
		for i := range holder.Attrs {
			if h := &holder.Attrs[i]; h.Type == e.Type && h.Name == e.Name && h.ID == e.ID {
				a = h
				break
			}
		}
		if a == nil {
			return nil, fmt.Errorf("no attribute %#x %q with id %d in MFT record %d", e.Type, e.Name, e.ID, e.Record)
		}
		f.attrs = append(f.attrs, a)
	}
	return f, nil
}

// first returns the first attribute of type typ named name, or nil.
func (f *file) first(typ uint32, name string) *attribute {
	for _, a := range f.attrs {
		if a.Type == typ && a.Name == name {
			return a
		}
	}
	return nil
}

// openAttr returns the data of f's attribute of type typ named name: its
// resident value, or its pieces' runs (in one record, or split over records
// by an attribute list) put together.
func (v *volume) openAttr(f *file, typ uint32, name string) (stream, error) {
	var pieces []*attribute
	for _, a := range f.attrs {
		if a.Type == typ && a.Name == name {
			pieces = append(pieces, a)
		}
	}
	if len(pieces) == 0 {
		return nil, fmt.Errorf("no attribute %#x %q", typ, name)
	}
	if !pieces[0].NonResident {
		if len(pieces) > 1 {
			return nil, fmt.Errorf("attribute %#x %q: a resident piece and %d others", typ, name, len(pieces)-1)
		}
		return bytes.NewReader(pieces[0].Value), nil
	}
	var first *attribute
	var runs []run
	for _, a := range pieces {
		if !a.NonResident {
			return nil, fmt.Errorf("attribute %#x %q: resident and non-resident pieces", typ, name)
		}
		if a.LowVCN == 0 {
			if first != nil {
				return nil, fmt.Errorf("attribute %#x %q: two pieces at VCN 0", typ, name)
			}
			first = a
		}
		runs = append(runs, a.Runs...)
	}
	if first == nil {
		return nil, fmt.Errorf("attribute %#x %q: no piece at VCN 0", typ, name)
	}
	if first.Flags&flagEncrypted != 0 {
		return nil, errors.New("encrypted (EFS) data")
	}
	rr, err := v.newRunReader(runs, first.DataSize, first.InitSize)
	if err != nil {
		return nil, err
	}
	if first.Flags&flagCompressed != 0 {
		return v.newCompressedReader(rr, first.CompUnit)
	}
	return rr, nil
}
