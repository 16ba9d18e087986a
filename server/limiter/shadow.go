package limiter

// SetShadowMode puts every limit in shadow mode (envoyproxy/ratelimit's
// SHADOW_MODE=true), as if each descriptor had shadow_mode: true: no call is
// refused, each limit counts a call only when it would have admitted it, and
// the statuses say shadow. Call it before serving.
func (l *Limiter) SetShadowMode(on bool) { l.shadowMode = on }
