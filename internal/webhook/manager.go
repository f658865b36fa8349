package webhook

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/relayhq/relay/internal/store"
)

// Manager errors.
var (
	// ErrNotFound: no endpoint with that id (wraps store.ErrNotFound).
	ErrNotFound = fmt.Errorf("webhook: endpoint %w", store.ErrNotFound)
	// ErrConflict: the id is taken, or the endpoint comes from the
	// webhooks file and can only be changed there.
	ErrConflict = errors.New("webhook: conflict")
)

// Source says where an endpoint is defined.
const (
	SourceAPI  = "api"
	SourceFile = "file"
)

// Manager keeps the endpoints of the store (managed through the API) and
// of the webhooks file, and makes the engine deliver them. Every replica
// runs one; Sync (called periodically and after every change) brings the
// engine in line with the store, so a change made through one replica's
// API reaches the others.
type Manager struct {
	st  store.Webhooks
	eng *Engine

	mu   sync.Mutex          // guards file
	file map[string]Endpoint // from RELAY_WEBHOOKS_FILE
}

// NewManager returns a manager of st's endpoints delivered by eng.
func NewManager(st store.Webhooks, eng *Engine) *Manager {
	return &Manager{st: st, eng: eng, file: map[string]Endpoint{}}
}

// Engine returns the delivery engine.
func (m *Manager) Engine() *Engine { return m.eng }

// SetFile replaces the endpoints defined by the webhooks file (all
// validated first; nothing changes on error) and syncs.
func (m *Manager) SetFile(ctx context.Context, eps []Endpoint) error {
	byID := map[string]Endpoint{}
	var errs []error
	for i, ep := range eps {
		if err := ep.Validate(m.eng.opts.Prefix); err != nil {
			errs = append(errs, fmt.Errorf("webhook %d (%s): %w", i+1, ep.ID, err))
		}
		if _, dup := byID[ep.ID]; dup {
			errs = append(errs, fmt.Errorf("webhook %d: id %s given twice", i+1, ep.ID))
		}
		byID[ep.ID] = ep
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	m.mu.Lock()
	m.file = byID
	m.mu.Unlock()
	return m.Sync(ctx)
}

// Sync makes the engine deliver every enabled endpoint, file first.
func (m *Manager) Sync(ctx context.Context) error {
	all, err := m.List(ctx)
	if err != nil {
		return err
	}
	return m.eng.Apply(ctx, all)
}

// Run syncs every interval until ctx ends (changes made elsewhere).
func (m *Manager) Run(ctx context.Context, every time.Duration) {
	for sleep(ctx, every) == nil {
		if err := m.Sync(ctx); err != nil && ctx.Err() == nil {
			m.eng.log.Warn("webhook: sync", "err", err)
		}
	}
}

// List returns every endpoint, in id order; a file endpoint hides a
// stored one with the same id.
func (m *Manager) List(ctx context.Context) ([]Endpoint, error) {
	stored, err := m.st.ListWebhooks(ctx)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	out := make([]Endpoint, 0, len(stored)+len(m.file))
	for _, ep := range m.file {
		out = append(out, ep)
	}
	m.mu.Unlock()
	for _, w := range stored {
		ep, err := decode(w)
		if err != nil {
			m.eng.log.Error("webhook: stored endpoint unreadable", "endpoint", w.ID, "err", err)
			continue
		}
		if m.Source(ep.ID) == SourceAPI {
			out = append(out, ep)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Source reports where id is defined (file or api).
func (m *Manager) Source(id string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.file[id]; ok {
		return SourceFile
	}
	return SourceAPI
}

// Get returns one endpoint.
func (m *Manager) Get(ctx context.Context, id string) (Endpoint, error) {
	m.mu.Lock()
	ep, ok := m.file[id]
	m.mu.Unlock()
	if ok {
		return ep, nil
	}
	w, err := m.st.GetWebhook(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Endpoint{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return Endpoint{}, err
	}
	return decode(w)
}

// Create stores a new endpoint: an id and a secret are generated when
// absent. The returned endpoint holds the secret: show it once.
func (m *Manager) Create(ctx context.Context, ep Endpoint) (Endpoint, error) {
	if ep.ID == "" {
		ep.ID = newID()
	}
	if len(ep.Secrets) == 0 {
		ep.Secrets = []Secret{NewSecret()}
	}
	if err := ep.Validate(m.eng.opts.Prefix); err != nil {
		return Endpoint{}, err
	}
	if _, err := m.Get(ctx, ep.ID); err == nil {
		return Endpoint{}, fmt.Errorf("%w: endpoint %s exists", ErrConflict, ep.ID)
	}
	return ep, m.put(ctx, ep)
}

// Patch changes an API endpoint; nil fields stay as they are.
type Patch struct {
	URL               *string   `json:"url"`
	Subjects          *[]string `json:"subjects"`
	ChatwootSignature *bool     `json:"chatwoot_signature"`
	AllowHTTP         *bool     `json:"allow_http"`
	Concurrency       *int      `json:"concurrency"`
	RateLimit         *float64  `json:"rate_limit"`
	Disabled          *bool     `json:"disabled"`
	// RotateSecret puts a new secret first and keeps the newest previous
	// one second: receivers accept either until DropOldSecret.
	RotateSecret  bool `json:"rotate_secret"`
	DropOldSecret bool `json:"drop_old_secret"`
}

// Update applies p to an API endpoint. The result holds the secrets.
func (m *Manager) Update(ctx context.Context, id string, p Patch) (Endpoint, error) {
	if m.Source(id) == SourceFile {
		return Endpoint{}, fmt.Errorf("%w: endpoint %s is defined in the webhooks file", ErrConflict, id)
	}
	ep, err := m.Get(ctx, id)
	if err != nil {
		return Endpoint{}, err
	}
	p.apply(&ep)
	if err := ep.Validate(m.eng.opts.Prefix); err != nil {
		return Endpoint{}, err
	}
	return ep, m.put(ctx, ep)
}

func (p Patch) apply(ep *Endpoint) {
	set(&ep.URL, p.URL)
	set(&ep.Subjects, p.Subjects)
	set(&ep.ChatwootSignature, p.ChatwootSignature)
	set(&ep.AllowHTTP, p.AllowHTTP)
	set(&ep.Concurrency, p.Concurrency)
	set(&ep.RateLimit, p.RateLimit)
	set(&ep.Disabled, p.Disabled)
	if p.RotateSecret {
		ep.Secrets = []Secret{NewSecret(), ep.Secrets[0]}
	}
	if p.DropOldSecret && len(ep.Secrets) > 1 {
		ep.Secrets = ep.Secrets[:1]
	}
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// Delete removes an API endpoint and its consumer (its backlog too).
func (m *Manager) Delete(ctx context.Context, id string) error {
	if m.Source(id) == SourceFile {
		return fmt.Errorf("%w: endpoint %s is defined in the webhooks file", ErrConflict, id)
	}
	if err := m.st.DeleteWebhook(ctx, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		return err
	}
	return m.eng.Delete(ctx, id)
}

// Disable persists Disabled for an endpoint whose receiver answered 410
// (Options.OnGone). A file endpoint stays disabled until the next reload.
func (m *Manager) Disable(ctx context.Context, id string) {
	if m.Source(id) == SourceFile {
		m.mu.Lock()
		ep := m.file[id]
		ep.Disabled = true
		m.file[id] = ep
		m.mu.Unlock()
		return
	}
	t := true
	if _, err := m.Update(ctx, id, Patch{Disabled: &t}); err != nil {
		m.eng.log.Error("webhook: disable after 410", "endpoint", id, "err", err)
	}
}

// put stores ep and syncs the engine.
func (m *Manager) put(ctx context.Context, ep Endpoint) error {
	data, err := json.Marshal(stored(ep))
	if err != nil {
		return err
	}
	if err := m.st.PutWebhook(ctx, store.Webhook{ID: ep.ID, Data: data}); err != nil {
		return err
	}
	return m.Sync(ctx)
}

// storedEndpoint is the stored document: Endpoint with the secrets'
// text (Secret marshals as itself; the type only hides it from printing).
type storedEndpoint Endpoint

func stored(ep Endpoint) storedEndpoint { return storedEndpoint(ep) }

func decode(w store.Webhook) (Endpoint, error) {
	var ep storedEndpoint
	if err := json.Unmarshal(w.Data, &ep); err != nil {
		return Endpoint{}, fmt.Errorf("webhook %s: %w", w.ID, err)
	}
	return Endpoint(ep), nil
}

// newID returns a random endpoint id ("wh_" + 16 hex digits).
func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return fmt.Sprintf("wh_%x", b)
}

// Deliveries returns the recent attempts made by this process for id.
func (m *Manager) Deliveries(id string) []Attempt { return m.eng.Deliveries(id) }
