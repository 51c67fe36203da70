package format

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Node types.
const (
	NodeFile    = "file"
	NodeDir     = "dir"
	NodeSymlink = "symlink"
	NodeDev     = "dev"     // block device
	NodeCharDev = "chardev" // character device
	NodeFIFO    = "fifo"
	NodeSocket  = "socket"
)

// Xattr is one extended attribute; POSIX ACLs are the system.posix_acl_* ones.
type Xattr struct {
	Name  RawString `json:"name"`
	Value []byte    `json:"value"`
}

// Node is one entry of a directory with every piece of metadata a restore brings back.
// Times are nanoseconds since the Unix epoch.
type Node struct {
	Name       RawString `json:"name"`
	Type       string    `json:"type"`
	Mode       uint32    `json:"mode"` // permission bits with setuid, setgid and sticky (07777)
	UID        uint32    `json:"uid"`
	GID        uint32    `json:"gid"`
	User       string    `json:"user,omitempty"`
	Group      string    `json:"group,omitempty"`
	Size       uint64    `json:"size,omitempty"`
	MTime      int64     `json:"mtime"`
	ATime      int64     `json:"atime"`
	CTime      int64     `json:"ctime"`
	Inode      uint64    `json:"inode,omitempty"`
	DeviceID   uint64    `json:"device_id,omitempty"` // st_dev of the source filesystem
	Links      uint64    `json:"links,omitempty"`
	Rdev       uint64    `json:"rdev,omitempty"` // device number of a device node
	LinkTarget RawString `json:"link_target,omitempty"`
	Xattrs     []Xattr   `json:"xattrs,omitempty"`
	Content    []ID      `json:"content,omitempty"` // data blobs of a file, in order
	Subtree    *ID       `json:"subtree,omitempty"` // tree blob of a directory
	// Error notes a problem met while reading the entry (such as a file that changed).
	Error string `json:"error,omitempty"`
}

// Tree is a directory's list of nodes, sorted by name bytes, names unique.
type Tree struct {
	Nodes []*Node `json:"nodes"`
}

// SortNodes orders t's nodes by name.
func (t *Tree) SortNodes() {
	sort.Slice(t.Nodes, func(i, j int) bool { return t.Nodes[i].Name < t.Nodes[j].Name })
}

// Find returns the node called name, or nil.
func (t *Tree) Find(name string) *Node {
	i := sort.Search(len(t.Nodes), func(i int) bool { return string(t.Nodes[i].Name) >= name })
	if i < len(t.Nodes) && string(t.Nodes[i].Name) == name {
		return t.Nodes[i]
	}
	return nil
}

// EncodeTree returns the JSON of t with its nodes sorted.
func EncodeTree(t *Tree) ([]byte, error) {
	t.SortNodes()
	return json.Marshal(t)
}

// DecodeTree parses and checks a tree: known node types, valid names, sorted and
// unique, directories with a subtree. It reads one node at a time and stops at the
// first bad one, so that what it allocates stays in proportion to the valid nodes
// it has read; unknown fields are skipped.
func DecodeTree(b []byte) (*Tree, error) {
	t, err := decodeTree(b)
	if err != nil {
		return nil, fmt.Errorf("tree: %w", err)
	}
	return t, nil
}

func decodeTree(b []byte) (*Tree, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	t := &Tree{}
	seen := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		// encoding/json matches field names without regard to case; so does this.
		if key, _ := tok.(string); !strings.EqualFold(key, "nodes") {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, err
			}
			continue
		}
		if seen {
			return nil, fmt.Errorf("field nodes repeated")
		}
		seen = true
		if err := decodeNodes(dec, t); err != nil {
			return nil, err
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the tree")
	}
	return t, nil
}

// decodeNodes reads the value of the field "nodes": null or an array of nodes.
func decodeNodes(dec *json.Decoder, t *Tree) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		return nil
	}
	if tok != json.Delim('[') {
		return fmt.Errorf("nodes: want an array, got %v", tok)
	}
	for i := 0; dec.More(); i++ {
		var n *Node
		if err := dec.Decode(&n); err != nil {
			return fmt.Errorf("node %d: %w", i, err)
		}
		if err := checkNode(i, n, t.Nodes); err != nil {
			return err
		}
		t.Nodes = append(t.Nodes, n)
	}
	return expectDelim(dec, ']')
}

// checkNode checks node i, n, given the nodes before it.
func checkNode(i int, n *Node, prev []*Node) error {
	if n == nil {
		return fmt.Errorf("node %d is null", i)
	}
	if err := CheckName(string(n.Name)); err != nil {
		return fmt.Errorf("node %d: %w", i, err)
	}
	if i > 0 && prev[i-1].Name >= n.Name {
		return fmt.Errorf("names not sorted or repeated at %q", n.Name)
	}
	switch n.Type {
	case NodeDir:
		if n.Subtree == nil {
			return fmt.Errorf("directory %q has no subtree", n.Name)
		}
	case NodeFile, NodeSymlink, NodeDev, NodeCharDev, NodeFIFO, NodeSocket:
	default:
		return fmt.Errorf("node %q has unknown type %q", n.Name, n.Type)
	}
	if n.Mode&^07777 != 0 {
		return fmt.Errorf("node %q has invalid mode %o", n.Name, n.Mode)
	}
	return nil
}

func expectDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != d {
		return fmt.Errorf("want %v, got %v", d, tok)
	}
	return nil
}

// CheckName returns an error unless name is usable as one path element: not empty,
// not "." or "..", and without '/' or NUL.
func CheckName(name string) error {
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("invalid name %q", name)
	}
	if bytes.IndexByte([]byte(name), '/') >= 0 || bytes.IndexByte([]byte(name), 0) >= 0 {
		return fmt.Errorf("invalid name %q", name)
	}
	return nil
}
