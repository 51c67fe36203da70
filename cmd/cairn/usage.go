package main

import "strings"

// isUsage recognises cobra's errors for unknown commands and flags, which it
// returns as plain errors.
func isUsage(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "unknown flag") ||
		strings.HasPrefix(msg, "unknown shorthand flag") || strings.Contains(msg, "requires at least") ||
		strings.Contains(msg, "accepts ")
}
