package cli

import "fmt"

// Exit codes of DESIGN.md.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
	ExitPartial = 3
)

// ExitError carries the exit code a command ends with.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// usageError marks bad usage: exit code 2.
func usageError(format string, args ...any) error {
	return &ExitError{Code: ExitUsage, Err: fmt.Errorf(format, args...)}
}

// partialError marks a command that did its job but skipped some sources: exit code 3.
func partialError(format string, args ...any) error {
	return &ExitError{Code: ExitPartial, Err: fmt.Errorf(format, args...)}
}
