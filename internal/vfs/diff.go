package vfs

import (
	"bytes"
	"context"
	"path"
	"slices"

	"cairn/internal/repo"
)

// ChangeKind says how an entry differs between two trees.
type ChangeKind string

// Change kinds, as diff prints them.
const (
	Added    ChangeKind = "+"
	Removed  ChangeKind = "-"
	Modified ChangeKind = "M" // content differs
	TypeChg  ChangeKind = "T" // type differs
	MetaChg  ChangeKind = "U" // only metadata differs
)

// Change is one difference between two trees. Old or New is nil for an added or
// removed entry.
type Change struct {
	Path     string
	Kind     ChangeKind
	Old, New *repo.Node
}

// Diff calls fn for every difference between the trees a and b, in path order. An
// added or removed folder is reported once, not with everything inside it.
func Diff(ctx context.Context, a, b *Entry, fn func(Change) error) error {
	return diffDir(ctx, "/", a, b, fn)
}

func diffDir(ctx context.Context, p string, a, b *Entry, fn func(Change) error) error {
	if a.Node.Subtree != nil && b.Node.Subtree != nil && *a.Node.Subtree == *b.Node.Subtree {
		return nil // identical trees
	}
	ak, err := a.Children(ctx)
	if err != nil {
		return err
	}
	bk, err := b.Children(ctx)
	if err != nil {
		return err
	}
	i, j := 0, 0
	for i < len(ak) || j < len(bk) {
		if err := ctx.Err(); err != nil {
			return err
		}
		switch {
		case j == len(bk) || (i < len(ak) && ak[i].Name() < bk[j].Name()):
			if err := fn(Change{Path: path.Join(p, ak[i].Name()), Kind: Removed, Old: ak[i].Node}); err != nil {
				return err
			}
			i++
		case i == len(ak) || bk[j].Name() < ak[i].Name():
			if err := fn(Change{Path: path.Join(p, bk[j].Name()), Kind: Added, New: bk[j].Node}); err != nil {
				return err
			}
			j++
		default:
			if err := diffEntry(ctx, path.Join(p, ak[i].Name()), ak[i], bk[j], fn); err != nil {
				return err
			}
			i++
			j++
		}
	}
	return nil
}

func diffEntry(ctx context.Context, p string, a, b *Entry, fn func(Change) error) error {
	an, bn := a.Node, b.Node
	if an.Type != bn.Type {
		return fn(Change{Path: p, Kind: TypeChg, Old: an, New: bn})
	}
	if an.Type == repo.NodeDir {
		if !sameMeta(an, bn) {
			if err := fn(Change{Path: p, Kind: MetaChg, Old: an, New: bn}); err != nil {
				return err
			}
		}
		return diffDir(ctx, p, a, b, fn)
	}
	switch {
	case an.Size != bn.Size || !slices.Equal(an.Content, bn.Content) || an.LinkTarget != bn.LinkTarget || an.Rdev != bn.Rdev:
		return fn(Change{Path: p, Kind: Modified, Old: an, New: bn})
	case !sameMeta(an, bn):
		return fn(Change{Path: p, Kind: MetaChg, Old: an, New: bn})
	}
	return nil
}

func sameMeta(a, b *repo.Node) bool {
	if a.Mode != b.Mode || a.UID != b.UID || a.GID != b.GID || a.MTime != b.MTime || len(a.Xattrs) != len(b.Xattrs) {
		return false
	}
	for i := range a.Xattrs {
		if a.Xattrs[i].Name != b.Xattrs[i].Name || !bytes.Equal(a.Xattrs[i].Value, b.Xattrs[i].Value) {
			return false
		}
	}
	return true
}
