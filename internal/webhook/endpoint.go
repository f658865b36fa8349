package webhook

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
)

// ErrEndpoint reports an endpoint configuration that cannot be used.
var ErrEndpoint = errors.New("webhook: invalid endpoint")

// Endpoint is one receiver: where to POST, which subjects, how to sign.
// Its LogValue leaves the secrets and the URL's user info and query out.
type Endpoint struct {
	// ID names the endpoint: [A-Za-z0-9_-], 1 to 64 characters. It names
	// the durable consumer and the dead-letter subject too.
	ID string `json:"id"`
	// URL receives the POSTs; https unless AllowHTTP.
	URL string `json:"url"`
	// Subjects are NATS subject patterns within the relay's prefix
	// (e.g. "chatwoot.*.*.*.*.message.created").
	Subjects []string `json:"subjects"`
	// Secrets sign deliveries: one, or two while rotating (both sign).
	Secrets []Secret `json:"secrets"`
	// ChatwootSignature adds X-Chatwoot-Signature/-Timestamp/-Delivery,
	// keyed with the first secret's text, for receivers written for
	// Chatwoot's own webhooks.
	ChatwootSignature bool `json:"chatwoot_signature,omitempty"`
	// AllowHTTP permits an http:// URL.
	AllowHTTP bool `json:"allow_http,omitempty"`
	// Concurrency is how many conversations are delivered in parallel;
	// 0 means the engine's default.
	Concurrency int `json:"concurrency,omitempty"`
	// RateLimit bounds attempts per second; 0 means unlimited.
	RateLimit float64 `json:"rate_limit,omitempty"`
	// Disabled endpoints keep their consumer (and so their backlog) but
	// receive nothing. A 410 answer sets it.
	Disabled bool `json:"disabled,omitempty"`
}

// maxConcurrency bounds an endpoint's workers, and so its connections.
const maxConcurrency = 1024

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// subjectToken is one token of a subject pattern.
var subjectToken = regexp.MustCompile(`^([A-Za-z0-9_-]+|\*|>)$`)

// Validate reports every problem of e at once; prefix is the relay's
// subject prefix, which every pattern must start with.
func (e Endpoint) Validate(prefix string) error {
	var errs []error
	if !idPattern.MatchString(e.ID) {
		errs = append(errs, errors.New("id: 1 to 64 of [A-Za-z0-9_-]"))
	}
	if err := checkURL(e.URL, e.AllowHTTP); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, checkSubjects(e.Subjects, prefix)...)
	if _, err := newSigner(e.Secrets, e.ChatwootSignature); err != nil {
		errs = append(errs, err)
	}
	if e.Concurrency < 0 || e.Concurrency > maxConcurrency {
		errs = append(errs, fmt.Errorf("concurrency: 0 to %d", maxConcurrency))
	}
	if e.RateLimit < 0 {
		errs = append(errs, errors.New("rate_limit: not negative"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrEndpoint, errors.Join(errs...))
	}
	return nil
}

// checkURL accepts an absolute https URL (http when allowed) without user
// info or fragment.
func checkURL(raw string, allowHTTP bool) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "":
		return errors.New("url: an absolute http(s) URL")
	case u.Scheme == "http" && !allowHTTP:
		return errors.New("url: https required (set allow_http for http)")
	case u.Scheme != "https" && u.Scheme != "http":
		return errors.New("url: scheme must be https")
	case u.User != nil:
		return errors.New("url: no user info; authenticate with the signature")
	case u.Fragment != "":
		return errors.New("url: no fragment")
	}
	return nil
}

// checkSubjects checks each pattern: within prefix, valid tokens, '>' last.
func checkSubjects(subjects []string, prefix string) []error {
	if len(subjects) == 0 {
		return []error{errors.New("subjects: at least one pattern")}
	}
	var errs []error
	for _, s := range subjects {
		toks := strings.Split(s, ".")
		ok := len(toks) > 1 && toks[0] == prefix
		for i, t := range toks {
			ok = ok && subjectToken.MatchString(t) && (t != ">" || i == len(toks)-1)
		}
		if !ok {
			errs = append(errs, fmt.Errorf("subjects: %q is not a pattern under %q", s, prefix+"."))
		}
	}
	return errs
}

// LogValue implements slog.LogValuer: id, host and subjects only.
func (e Endpoint) LogValue() slog.Value {
	host := ""
	if u, err := url.Parse(e.URL); err == nil {
		host = u.Host
	}
	return slog.GroupValue(slog.String("id", e.ID), slog.String("host", host),
		slog.Any("subjects", e.Subjects), slog.Bool("disabled", e.Disabled))
}
