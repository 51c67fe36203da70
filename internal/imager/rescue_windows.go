//go:build windows

package imager

import (
	"errors"
	"syscall"
)

// Windows errors of a medium that cannot be read.
const (
	errorCRC            = syscall.Errno(23)   // ERROR_CRC: data error (cyclic redundancy check)
	errorSectorNotFound = syscall.Errno(27)   // ERROR_SECTOR_NOT_FOUND
	errorIODevice       = syscall.Errno(1117) // ERROR_IO_DEVICE
)

// isMediaError reports whether err is a read error of the medium (a bad sector),
// which a rescue read works around, rather than the source being gone.
func isMediaError(err error) bool {
	return errors.Is(err, errorCRC) || errors.Is(err, errorSectorNotFound) || errors.Is(err, errorIODevice)
}
