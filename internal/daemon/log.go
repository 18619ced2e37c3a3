package daemon

import (
	"fmt"
	"io"
	"os"

	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/configs"
)

// NewLogger returns the process logger writing to w at the configured
// level. Format auto is text when w is a terminal (a person reads it) and
// JSON otherwise (a log collector reads it).
func NewLogger(cfg configs.Log, w io.Writer) (*logrus.Logger, error) {
	lvl, err := logrus.ParseLevel(cfg.Level)
	if err != nil {
		return nil, fmt.Errorf("log level %q (%s): %w", cfg.Level, configs.EnvLogLevel, err)
	}
	l := logrus.New()
	l.SetOutput(w)
	l.SetLevel(lvl)
	text := false
	switch cfg.Format {
	case configs.FormatText:
		text = true
	case configs.FormatJSON:
	case configs.FormatAuto, "":
		text = isTerminal(w)
	default:
		return nil, fmt.Errorf("log format %q is not auto, json or text", cfg.Format)
	}
	if text {
		l.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	} else {
		l.SetFormatter(&jsonFormatter{})
	}
	return l, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
