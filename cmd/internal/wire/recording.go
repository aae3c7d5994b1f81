package wire

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/kprobe/kprobe/pipeline/launch"
	"github.com/kprobe/kprobe/pipeline/recorder"
)

// RecordingOptions is a recording to open: the recorder's options, and a command to start
// and record from its first instruction ('-- CMD').
type RecordingOptions struct {
	Recorder recorder.Options
	Command  []string
	// Stdout and Stderr are the command's.
	Stdout, Stderr io.Writer
}

// Recording is an open recorder and the command it was opened for, held until
// RunCommand.
type Recording struct {
	*recorder.Recorder
	held *launch.Held
}

// OpenRecording opens the probes. With a command it first starts the command held, so
// that its pid is in the filters before it runs; the launcher's own events before it
// execs the command are skipped (and counted).
func OpenRecording(ctx context.Context, o RecordingOptions) (*Recording, error) {
	r := &Recording{}
	ro := o.Recorder
	if len(o.Command) > 0 {
		held, err := launch.Start(ctx, o.Command, launch.Options{Stdout: o.Stdout, Stderr: o.Stderr})
		if err != nil {
			return nil, err
		}
		r.held = held
		ro.BPF.PIDs = append(append([]uint32(nil), ro.BPF.PIDs...), held.PID())
		if ro.Flight != nil {
			fo := *ro.Flight
			fo.PIDs = append(append([]uint32(nil), fo.PIDs...), held.PID())
			ro.Flight = &fo
		}
		ro.Skip = held.Skip
	}
	rec, err := recorder.Open(ctx, ro)
	if err != nil {
		if r.held != nil {
			r.held.Abort() // the launcher exits without running the command
		}
		return nil, err
	}
	r.Recorder = rec
	return r, nil
}

// HasCommand reports whether the recording started a command.
func (r *Recording) HasCommand() bool { return r.held != nil }

// drainDelay lets the command's last events reach the ring buffer reader before the
// recording stops.
const drainDelay = 200 * time.Millisecond

// RunCommand releases the held command; when it exits, cancel ends the recording. The
// channel gets the command's outcome (nil at once without a command). A command that ends
// because the recording was asked to stop (its ctx ended: --duration, SIGTERM, SIGINT)
// has done what was asked: that is no failure, whatever its status.
func (r *Recording) RunCommand(cancel context.CancelFunc) <-chan error {
	errc := make(chan error, 1)
	if r.held == nil {
		errc <- nil
		return errc
	}
	if err := r.held.Release(); err != nil {
		if r.held.Stopped() {
			err = nil // stopped before it ran: the launcher is gone
		}
		errc <- err
		cancel()
		return errc
	}
	go func() {
		err := r.held.Wait()
		time.Sleep(drainDelay)
		// Checked after the delay: a signal from the terminal (Ctrl-C) reaches the command
		// and this process at once, and the stop may be seen after the command's death.
		if err != nil && !r.held.Stopped() {
			err = fmt.Errorf("recorded command: %w", err)
		} else {
			err = nil
		}
		cancel()
		errc <- err
	}()
	return errc
}
