//go:build !linux

package disk

import "fmt"

// Zero makes n bytes at off read as zeros by writing zeros.
func (d *Device) Zero(off, n int64) error {
	if !d.writable {
		return fmt.Errorf("%s: opened read-only", d.Path)
	}
	return d.writeZeros(off, n)
}
