//go:build !windows

package restorer

import "syscall"

const noFollow = syscall.O_NOFOLLOW
