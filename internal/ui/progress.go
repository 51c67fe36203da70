package ui

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// Progress shows a long operation's files and bytes against their totals: a bar with
// rate and ETA on a terminal, a status object a second in JSON, nothing otherwise.
// Its counters are safe for concurrent use.
type Progress struct {
	p      *Printer
	action string
	start  time.Time

	totalFiles, totalBytes atomic.Int64
	totalFinal             atomic.Bool
	files, bytes           atomic.Int64
	errors                 atomic.Int64

	mu      sync.Mutex
	bars    *mpb.Progress
	bar     *mpb.Bar
	stop    chan struct{}
	stopped chan struct{}
}

// NewProgress starts showing the progress of action (such as "backup").
func (p *Printer) NewProgress(action string) *Progress {
	pr := &Progress{p: p, action: action, start: time.Now(), stop: make(chan struct{}), stopped: make(chan struct{})}
	switch {
	case p.json && !p.quiet:
		go pr.jsonLoop()
	case p.tty && !p.quiet:
		pr.bars = mpb.New(mpb.WithOutput(p.errOut), mpb.WithRefreshRate(200*time.Millisecond), mpb.WithWidth(40))
		pr.bar = pr.bars.New(0, mpb.BarStyle(),
			mpb.PrependDecorators(
				decor.Name(action+" ", decor.WC{C: decor.DindentRight}),
				decor.Any(func(decor.Statistics) string {
					return fmt.Sprintf("%d/%d files ", pr.files.Load(), pr.totalFiles.Load())
				}),
				decor.CountersKibiByte("% .1f / % .1f"),
			),
			mpb.AppendDecorators(
				decor.AverageSpeed(decor.SizeB1024(0), " % .1f", decor.WCSyncWidth),
				decor.Name(" ETA "),
				decor.AverageETA(decor.ET_STYLE_MMSS),
			),
		)
		close(pr.stopped)
	default:
		close(pr.stopped)
	}
	return pr
}

// SetTotal sets the totals found so far; final says they will not grow.
func (pr *Progress) SetTotal(files, bytes int64, final bool) {
	pr.totalFiles.Store(files)
	pr.totalBytes.Store(bytes)
	pr.totalFinal.Store(final)
	if pr.bar != nil {
		pr.bar.SetTotal(max(bytes, pr.bytes.Load()), false)
	}
}

// AddFile counts one finished file.
func (pr *Progress) AddFile() { pr.files.Add(1) }

// AddBytes counts n bytes processed.
func (pr *Progress) AddBytes(n int64) {
	pr.bytes.Add(n)
	if pr.bar != nil {
		pr.bar.IncrInt64(n)
	}
}

// Error reports a problem with one item and counts it.
func (pr *Progress) Error(path string, err error) {
	pr.errors.Add(1)
	pr.p.Error(path, err)
}

// Warning reports something noted about one item.
func (pr *Progress) Warning(path, msg string) { pr.p.Warning(path, msg) }

// Errors returns how many errors were reported.
func (pr *Progress) Errors() int64 { return pr.errors.Load() }

// Elapsed returns the time since the progress started.
func (pr *Progress) Elapsed() time.Duration { return time.Since(pr.start) }

// Done stops the display; call it before printing the summary.
func (pr *Progress) Done() {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.bar != nil {
		pr.bar.SetTotal(pr.bytes.Load(), true)
		pr.bars.Wait()
		pr.bar = nil
		return
	}
	select {
	case <-pr.stop:
	default:
		close(pr.stop)
	}
	<-pr.stopped
}

// Status is the JSON object printed about once a second.
type Status struct {
	MessageType      string  `json:"message_type"` // "status"
	Action           string  `json:"action"`
	SecondsElapsed   float64 `json:"seconds_elapsed"`
	SecondsRemaining float64 `json:"seconds_remaining,omitempty"`
	PercentDone      float64 `json:"percent_done"`
	TotalFiles       int64   `json:"total_files"`
	FilesDone        int64   `json:"files_done"`
	TotalBytes       int64   `json:"total_bytes"`
	BytesDone        int64   `json:"bytes_done"`
	ErrorCount       int64   `json:"error_count"`
}

func (pr *Progress) status() Status {
	s := Status{
		MessageType: "status", Action: pr.action, SecondsElapsed: time.Since(pr.start).Seconds(),
		TotalFiles: pr.totalFiles.Load(), FilesDone: pr.files.Load(),
		TotalBytes: pr.totalBytes.Load(), BytesDone: pr.bytes.Load(), ErrorCount: pr.errors.Load(),
	}
	if s.TotalBytes > 0 {
		s.PercentDone = min(1, float64(s.BytesDone)/float64(s.TotalBytes))
		if pr.totalFinal.Load() && s.BytesDone > 0 {
			s.SecondsRemaining = s.SecondsElapsed * float64(s.TotalBytes-s.BytesDone) / float64(s.BytesDone)
		}
	}
	return s
}

func (pr *Progress) jsonLoop() {
	defer close(pr.stopped)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-pr.stop:
			return
		case <-t.C:
			st := pr.status()
			pr.p.mu.Lock()
			writeJSON(pr.p.out, st)
			pr.p.mu.Unlock()
		}
	}
}
