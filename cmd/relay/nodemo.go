//go:build nodemo

package main

import (
	"context"
	"errors"
	"io"
	"time"
)

// runDemo is left out of production builds (-tags nodemo, as the container
// image is built): the fake Chatwoot and its simulated agents are a tool
// for trying the relay, not part of what runs against a real Chatwoot.
func runDemo(context.Context, map[string]string, time.Duration, io.Writer, io.Writer) error {
	return errors.New("this build has no demo (built with -tags nodemo); run `go run ./cmd/relay -demo` from a source checkout")
}
