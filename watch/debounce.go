package watch

import "time"

// debounce holds off rebuilding during a burst of changes: it fires
// holdoff after the last change, and at most maxHoldoff after the first.
type debounce struct {
	holdoff, maxHoldoff time.Duration
	timer               *time.Timer
	first               time.Time
}

func newDebounce(holdoff, maxHoldoff time.Duration) *debounce {
	if holdoff <= 0 {
		holdoff = 100 * time.Millisecond
	}
	if maxHoldoff <= 0 {
		maxHoldoff = 500 * time.Millisecond
	}
	return &debounce{holdoff: holdoff, maxHoldoff: maxHoldoff}
}

// C fires when the burst is over; nil (never) when nothing is pending.
func (d *debounce) C() <-chan time.Time {
	if d.timer == nil {
		return nil
	}
	return d.timer.C
}

// change notes one change.
func (d *debounce) change() {
	now := time.Now()
	if d.timer == nil {
		d.first = now
		d.timer = time.NewTimer(d.holdoff)
		return
	}
	wait := d.holdoff
	if rest := d.maxHoldoff - now.Sub(d.first); rest < wait {
		wait = max(rest, 0)
	}
	d.timer.Reset(wait)
}

// fired is called after C fired.
func (d *debounce) fired() { d.timer = nil }

func (d *debounce) stop() {
	if d.timer != nil {
		d.timer.Stop()
	}
}
