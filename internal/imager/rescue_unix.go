//go:build !windows

package imager

import (
	"errors"
	"syscall"
)

// isMediaError reports whether err is a read error of the medium (a bad sector),
// which a rescue read works around, rather than the source being gone.
func isMediaError(err error) bool {
	return errors.Is(err, syscall.EIO) || errors.Is(err, syscall.EILSEQ) || errors.Is(err, syscall.EBADMSG)
}
