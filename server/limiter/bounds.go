package limiter

import (
	"errors"
	"fmt"
	"time"
)

// Bounds are the configurable limits on what one request may ask for and on
// what a replica keeps in memory for it, so that no caller can make Sluice or
// Redis hold unbounded memory. The defaults are far above what a gateway
// sends (a few descriptors of a few hundred bytes). The fixed per-field
// bounds (MaxDescriptors, MaxEntries, MaxKeyLen, MaxValueLen, ...) hold too.
type Bounds struct {
	// DescriptorBytes bounds one descriptor: the bytes of its entries'
	// keys and values, summed. (Optional, default DefaultDescriptorBytes)
	DescriptorBytes int
	// RequestBytes bounds one request: the domain and every descriptor's
	// keys and values, summed. (Optional, default DefaultRequestBytes)
	RequestBytes int
	// OverLimitCacheBytes bounds the memory of the over-limit cache (its
	// keys and entries); beyond it, entries are evicted. (Optional, default
	// DefaultOverLimitCacheBytes)
	OverLimitCacheBytes int
}

// Defaults of Bounds.
const (
	DefaultDescriptorBytes     = 4 << 10
	DefaultRequestBytes        = 64 << 10
	DefaultOverLimitCacheBytes = 16 << 20
)

// MaxOverrideWindow bounds the window of a per-descriptor limit override
// (Envoy's unit × unit_multiplier): one year, the longest unit. Every key a
// call writes lives as long as its window.
const MaxOverrideWindow = 365 * 24 * time.Hour

func (b *Bounds) setDefaults() {
	if b.DescriptorBytes == 0 {
		b.DescriptorBytes = DefaultDescriptorBytes
	}
	if b.RequestBytes == 0 {
		b.RequestBytes = DefaultRequestBytes
	}
	if b.OverLimitCacheBytes == 0 {
		b.OverLimitCacheBytes = DefaultOverLimitCacheBytes
	}
}

// Validate reports bounds that are negative.
func (b Bounds) Validate() error {
	var errs []error
	if b.DescriptorBytes < 0 {
		errs = append(errs, errors.New("max descriptor bytes: must not be negative"))
	}
	if b.RequestBytes < 0 {
		errs = append(errs, errors.New("max request bytes: must not be negative"))
	}
	if b.OverLimitCacheBytes < 0 {
		errs = append(errs, errors.New("over-limit cache bytes: must not be negative"))
	}
	return errors.Join(errs...)
}

// SetBounds replaces the limiter's bounds; zero fields take the defaults.
// Call it before serving.
func (l *Limiter) SetBounds(b Bounds) {
	b.setDefaults()
	l.bounds = b
	l.cache = newOverLimitCache(b.OverLimitCacheBytes)
}

// checkSize refuses a request or descriptor larger than the bounds.
func (b *Bounds) checkSize(r *Request) error {
	total := len(r.Domain)
	for i := range r.Descriptors {
		n := 0
		for _, e := range r.Descriptors[i].Entries {
			n += len(e.Key) + len(e.Value)
		}
		if n > b.DescriptorBytes {
			return invalid(fmt.Sprintf("descriptors[%d].entries", i), "%d bytes of keys and values, more than the %d a descriptor may have", n, b.DescriptorBytes)
		}
		total += n
	}
	if total > b.RequestBytes {
		return invalid("descriptors", "%d bytes of domain, keys and values, more than the %d a request may have", total, b.RequestBytes)
	}
	return nil
}

// checkOverride refuses a limit override whose window no counter may have.
func checkOverride(i int, d *Descriptor) error {
	if o := d.Override; o != nil && (o.Window <= 0 || o.Window > MaxOverrideWindow) {
		return invalid(fmt.Sprintf("descriptors[%d].limit", i), "a window of %v is outside (0, %v], the longest an override may span", o.Window, MaxOverrideWindow)
	}
	return nil
}
