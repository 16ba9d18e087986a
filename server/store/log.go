package store

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-rl/sluice/internal/logthrottle"
)

// SetLogger routes go-redis' own log lines (a dial that failed, a pool
// event) to l as warnings with the message "redis client" and the line as
// detail — in l's format, so --log-format json holds for them too — at most
// one a second: the others are counted in the next one's
// suppressed_since_last. Without it go-redis writes plain text to stderr
// several times a second while Redis is down. go-redis has one logger per
// process: the last SetLogger wins.
func SetLogger(l *slog.Logger) {
	redis.SetLogger(&clientLog{log: l})
}

// clientLog is a go-redis logger that writes through slog, throttled.
type clientLog struct {
	log      *slog.Logger
	throttle logthrottle.Throttle
}

func (c *clientLog) Printf(ctx context.Context, format string, v ...any) {
	ok, suppressed := c.throttle.Allow(time.Now())
	if !ok {
		return
	}
	if ctx == nil {
		ctx = context.Background()
	}
	c.log.LogAttrs(ctx, slog.LevelWarn, "redis client",
		slog.String("detail", strings.TrimSpace(fmt.Sprintf(format, v...))),
		slog.Int64("suppressed_since_last", suppressed))
}
