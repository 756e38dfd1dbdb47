package pgpurepy

import "log/slog"

// logger is the pool's optional slog.Logger: nil logs nothing.
type logger struct{ l *slog.Logger }

func (g logger) warn(msg string, args ...any) {
	if g.l != nil {
		g.l.Warn("pgpurepy: "+msg, args...)
	}
}

func (g logger) debug(msg string, args ...any) {
	if g.l != nil {
		g.l.Debug("pgpurepy: "+msg, args...)
	}
}
