package storetest

import (
	"context"
	"errors"
	"testing"

	"github.com/relayhq/relay/internal/store"
)

func testWebhooks(t *testing.T, b *Backend) {
	ctx, s := context.Background(), b.Store
	if _, err := s.GetWebhook(ctx, "crm"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get missing: %v", err)
	}
	if err := s.DeleteWebhook(ctx, "crm"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete missing: %v", err)
	}
	for _, w := range []store.Webhook{{ID: "crm", Data: []byte(`{"v":1}`)}, {ID: "bi", Data: []byte(`{"v":2}`)}, {ID: "crm", Data: []byte(`{"v":3}`)}} {
		if err := s.PutWebhook(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.GetWebhook(ctx, "crm")
	if err != nil || string(got.Data) != `{"v":3}` || got.ID != "crm" {
		t.Fatalf("get after replace: %+v %v", got, err)
	}
	list, err := s.ListWebhooks(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "bi" || list[1].ID != "crm" {
		t.Fatalf("list %+v %v", list, err)
	}
	if err := s.DeleteWebhook(ctx, "bi"); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.ListWebhooks(ctx); len(list) != 1 {
		t.Fatalf("after delete: %+v", list)
	}
}

func testWebhookInvalid(t *testing.T, b *Backend) {
	ctx := context.Background()
	for _, w := range []store.Webhook{{ID: "", Data: []byte("{}")}, {ID: "x"}} {
		if err := b.Store.PutWebhook(ctx, w); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("put %+v: %v, want ErrInvalid", w, err)
		}
	}
}
