// Package ui prints what commands have to say: results, messages, errors and
// progress, in a text form for people and a JSON-lines form for programs. Commands
// print only through a Printer, so they never branch on the output form.
package ui

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/term"
)

// Printer writes a command's output. It is safe for concurrent use.
type Printer struct {
	mu      sync.Mutex
	out     io.Writer
	errOut  io.Writer
	json    bool
	quiet   bool
	verbose int
	tty     bool
}

// NewPrinter returns a printer writing results to out and messages and errors to
// errOut; with asJSON every line is one JSON object.
func NewPrinter(out, errOut io.Writer, asJSON, quiet bool, verbose int) *Printer {
	tty := false
	if f, ok := errOut.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	return &Printer{out: out, errOut: errOut, json: asJSON, quiet: quiet, verbose: verbose, tty: tty}
}

// JSON reports whether output is JSON lines.
func (p *Printer) JSON() bool { return p.json }

// Out returns the writer for a command's raw output, such as a file's content.
func (p *Printer) Out() io.Writer { return p.out }

// Result prints a command's result: in JSON as v, one line; in text by calling text.
func (p *Printer) Result(v any, text func(w io.Writer)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		writeJSON(p.out, v)
		return
	}
	if text != nil {
		text(p.out)
	}
}

// Message prints an informational line for people (not in JSON, not when quiet).
func (p *Printer) Message(format string, args ...any) {
	if p.quiet || p.json {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, format+"\n", args...)
}

// Notice prints a line people must see even with --quiet, such as where a key is
// kept; in JSON it is an object with message_type "notice".
func (p *Printer) Notice(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	if p.json {
		writeJSON(p.out, map[string]any{"message_type": "notice", "message": msg})
		return
	}
	fmt.Fprintln(p.errOut, msg)
}

// Verbose prints a line only with -v (level 1) or -vv (level 2).
func (p *Printer) Verbose(level int, format string, args ...any) {
	if p.verbose < level || p.json {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, format+"\n", args...)
}

// Error reports a problem with one item (path may be empty); the command goes on.
func (p *Printer) Error(path string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		writeJSON(p.errOut, map[string]any{"message_type": "error", "path": path, "error": err.Error()})
		return
	}
	if path != "" {
		fmt.Fprintf(p.errOut, "error: %s: %v\n", path, err)
	} else {
		fmt.Fprintf(p.errOut, "error: %v\n", err)
	}
}

// Warning reports something noted about one item.
func (p *Printer) Warning(path, msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		writeJSON(p.errOut, map[string]any{"message_type": "warning", "path": path, "message": msg})
		return
	}
	fmt.Fprintf(p.errOut, "warning: %s: %s\n", path, msg)
}

func writeJSON(w io.Writer, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"message_type": "error", "error": err.Error()})
	}
	b = append(b, '\n')
	_, _ = w.Write(b)
}
