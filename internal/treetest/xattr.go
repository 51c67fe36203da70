//go:build linux

package treetest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// xattrs compares the names and values of all xattrs of the entry at rel,
// read without following symlinks. POSIX ACLs are among them, as the
// system.posix_acl_access and system.posix_acl_default xattrs.
func (c *comparer) xattrs(rel string) {
	var attrs [2]map[string][]byte
	for side := range 2 {
		var err error
		if attrs[side], err = readXattrs(c.path(side, rel)); err != nil {
			c.addf(rel, "read xattrs in %s: %v", sideName[side], err)
			return
		}
	}
	w, g := attrs[wantSide], attrs[gotSide]
	for _, name := range sortedKeys(w) {
		gv, ok := g[name]
		switch {
		case !ok:
			c.addf(rel, "xattr %q: missing in got", name)
		case !bytes.Equal(w[name], gv):
			c.addf(rel, "xattr %q: want %s, got %s", name, showXattr(name, w[name]), showXattr(name, gv))
		}
	}
	for _, name := range sortedKeys(g) {
		if _, ok := w[name]; !ok {
			c.addf(rel, "xattr %q: extra in got, %s", name, showXattr(name, g[name]))
		}
	}
}

// readXattrs returns all xattrs of p, not following a symlink. A filesystem
// without xattr support has none.
func readXattrs(p string) (map[string][]byte, error) {
	list, err := readSized(func(buf []byte) (int, error) { return unix.Llistxattr(p, buf) })
	if errors.Is(err, unix.ENOTSUP) {
		return map[string][]byte{}, nil
	}
	if err != nil {
		return nil, err
	}
	attrs := map[string][]byte{}
	for _, name := range strings.Split(string(list), "\x00") {
		if name == "" {
			continue
		}
		value, err := readSized(func(buf []byte) (int, error) { return unix.Lgetxattr(p, name, buf) })
		if errors.Is(err, unix.ENODATA) {
			continue // removed since the listing
		}
		if err != nil {
			return nil, err
		}
		attrs[name] = value
	}
	return attrs, nil
}

// readSized calls an xattr syscall first for the size, then with a buffer
// of that size, and again if the value grew in between (ERANGE).
func readSized(call func(buf []byte) (int, error)) ([]byte, error) {
	for {
		n, err := call(nil)
		if err != nil {
			return nil, err
		}
		buf := make([]byte, n)
		n, err = call(buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// showXattr shows an xattr value in a difference: a POSIX ACL as text in
// the short form of setfacl (e.g. "u::rw-,u:1234:rw-,g::r--,m::rw-,o::---"),
// any other value quoted.
func showXattr(name string, value []byte) string {
	if strings.HasPrefix(name, "system.posix_acl_") {
		if text, ok := aclText(value); ok {
			return text
		}
	}
	return quote(value)
}

// aclText decodes the Linux xattr form of a POSIX ACL: a 4-byte version 2,
// then 8-byte entries of tag (u16), permissions (u16) and id (u32).
func aclText(value []byte) (string, bool) {
	if len(value) < 4 || binary.LittleEndian.Uint32(value) != 2 || (len(value)-4)%8 != 0 {
		return "", false
	}
	var entries []string
	for e := value[4:]; len(e) > 0; e = e[8:] {
		tag, perm, id := binary.LittleEndian.Uint16(e), binary.LittleEndian.Uint16(e[2:]), binary.LittleEndian.Uint32(e[4:])
		var who string
		switch tag {
		case 0x01:
			who = "u:"
		case 0x02:
			who = fmt.Sprintf("u:%d", id)
		case 0x04:
			who = "g:"
		case 0x08:
			who = fmt.Sprintf("g:%d", id)
		case 0x10:
			who = "m:"
		case 0x20:
			who = "o:"
		default:
			return "", false
		}
		entries = append(entries, who+":"+permText(perm))
	}
	return strings.Join(entries, ","), true
}

// permText shows read, write and execute bits as "rwx", "r-x" and so on.
func permText(perm uint16) string {
	b := []byte("---")
	for i, c := range "rwx" {
		if perm&(4>>i) != 0 {
			b[i] = byte(c)
		}
	}
	return string(b)
}
