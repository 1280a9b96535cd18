package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/osprey-health/osprey/engine/store"
)

func order(acc string, at time.Time) store.Order {
	return store.Order{
		Accession: acc, PlacerOrderNumber: "P-" + acc, FillerOrderNumber: "F-" + acc,
		PatientID: "MRN1", PatientName: "DOE^JANE", PatientSex: "F", PatientBirthDate: "19700101",
		PatientIDAuthority: "GENHOSP", PatientClass: "E", Priority: "S", OrderingProvider: "1234^SMITH^JOHN", Location: "ED", ProcedureCode: "CTHEAD",
		ProcedureText: "CT HEAD WO CONTRAST", Reason: "headache", Status: "SC",
		MessageID: "M-" + acc, Channel: "ris-orders", OrderedAt: at.Add(-time.Hour), UpdatedAt: at,
	}
}

func putOrder(t *testing.T, s store.Store, o store.Order) {
	t.Helper()
	if err := s.PutOrder(t.Context(), o); err != nil {
		t.Fatalf("PutOrder(%s): %v", o.Accession, err)
	}
}

func getOrder(t *testing.T, s store.Store, acc string) store.Order {
	t.Helper()
	o, err := s.Order(t.Context(), acc)
	if err != nil {
		t.Fatalf("Order(%s): %v", acc, err)
	}
	return o
}

func testOrders(t *testing.T, s store.Store) {
	in := order("A1", t0)
	putOrder(t, s, in)
	got := getOrder(t, s, "A1")
	want := in
	want.OrderedAt, want.UpdatedAt = us(in.OrderedAt), us(in.UpdatedAt)
	want.MessageIDs = []string{"M-A1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Order round trip:\n got %+v\nwant %+v", got, want)
	}
	if got.UpdatedAt.Location() != time.UTC {
		t.Errorf("UpdatedAt in %v, want UTC", got.UpdatedAt.Location())
	}
	// The same message again (a redelivery) changes nothing and adds no history.
	putOrder(t, s, in)
	if again := getOrder(t, s, "A1"); !reflect.DeepEqual(again, want) {
		t.Errorf("after a repeated PutOrder:\n got %+v\nwant %+v", again, want)
	}
	if _, err := s.Order(t.Context(), "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Order of an unknown accession: %v, want ErrNotFound", err)
	}

	// Zero times: UpdatedAt becomes now, OrderedAt stays unknown.
	before := time.Now().Add(-time.Second)
	putOrder(t, s, store.Order{Accession: "A2"})
	z := getOrder(t, s, "A2")
	if !z.OrderedAt.IsZero() || z.UpdatedAt.Before(before) || z.MessageIDs != nil {
		t.Errorf("order with zero times = %+v, want OrderedAt zero, UpdatedAt now, no history", z)
	}
}

func testOrderMerge(t *testing.T, s store.Store) {
	first := order("A1", t0)
	putOrder(t, s, first)
	// A cancellation that only carries the order's identity and new status.
	cancel := store.Order{Accession: "A1", Status: "CA", Priority: "R", MessageID: "M-cancel",
		Channel: "ris-orders", OrderedAt: t0.Add(time.Hour), UpdatedAt: t0.Add(time.Minute)}
	putOrder(t, s, cancel)
	got := getOrder(t, s, "A1")
	want := first
	want.Status, want.Priority, want.MessageID = "CA", "R", "M-cancel"
	want.OrderedAt, want.UpdatedAt = us(first.OrderedAt), us(cancel.UpdatedAt) // the first OrderedAt stays
	want.MessageIDs = []string{"M-A1", "M-cancel"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after an update:\n got %+v\nwant %+v", got, want)
	}
	// A late message older than what is stored changes no field but joins the history.
	late := order("A1", t0.Add(-time.Minute))
	late.Priority, late.Location, late.MessageID = "A", "WARD", "M-late"
	putOrder(t, s, late)
	got = getOrder(t, s, "A1")
	want.MessageIDs = []string{"M-late", "M-A1", "M-cancel"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after an older message:\n got %+v\nwant %+v", got, want)
	}
	// An order first known without OrderedAt takes the first one a later message gives.
	putOrder(t, s, store.Order{Accession: "A3", UpdatedAt: t0})
	putOrder(t, s, store.Order{Accession: "A3", OrderedAt: t0, UpdatedAt: t0.Add(time.Second)})
	if o := getOrder(t, s, "A3"); !o.OrderedAt.Equal(us(t0)) {
		t.Errorf("OrderedAt = %v, want %v from the later message", o.OrderedAt, us(t0))
	}
}

func testOrderByNumber(t *testing.T, s store.Store) {
	putOrder(t, s, order("A1", t0))
	other := order("A2", t0.Add(time.Minute))
	other.PlacerOrderNumber = "P-A1" // a placer number reused by a newer order
	putOrder(t, s, other)
	tests := []struct {
		name, number, want string
	}{
		{"filler number", "F-A1", "A1"},
		{"placer number shared: newest wins", "P-A1", "A2"},
		{"filler of the other", "F-A2", "A2"},
		{"unknown", "X", ""},
		{"empty", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := s.OrderByNumber(t.Context(), tc.number)
			if tc.want == "" {
				if !errors.Is(err, store.ErrNotFound) {
					t.Errorf("OrderByNumber(%q) = %+v, %v; want ErrNotFound", tc.number, o, err)
				}
				return
			}
			if err != nil || o.Accession != tc.want {
				t.Fatalf("OrderByNumber(%q) = %q, %v; want %q", tc.number, o.Accession, err, tc.want)
			}
			if len(o.MessageIDs) != 1 {
				t.Errorf("history %v, want one message", o.MessageIDs)
			}
		})
	}
}

func testOrderInvalid(t *testing.T, s store.Store) {
	for _, acc := range []string{"", "   "} {
		if err := s.PutOrder(t.Context(), store.Order{Accession: acc, Priority: "S"}); !errors.Is(err, store.ErrInvalidOrder) {
			t.Errorf("PutOrder with accession %q: %v, want ErrInvalidOrder", acc, err)
		}
	}
	// A Latin-1 byte in a field must not lose the order (PostgreSQL text must be UTF-8).
	o := order("A\xe91", t0)
	o.PatientName = "M\xfcller^Hans"
	putOrder(t, s, o)
	if _, err := s.OrderByNumber(t.Context(), "F-A\xe91"); err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Errorf("OrderByNumber of an invalid UTF-8 number: %v", err)
	}
}

func testOrderConcurrent(t *testing.T, s store.Store) {
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := store.Order{Accession: "A1", Priority: "S", MessageID: fmt.Sprintf("M%02d", i),
				UpdatedAt: t0.Add(time.Duration(i) * time.Second)}
			errs <- s.PutOrder(t.Context(), o)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent PutOrder: %v", err)
		}
	}
	got := getOrder(t, s, "A1")
	if len(got.MessageIDs) != n || !slices.IsSorted(got.MessageIDs) {
		t.Errorf("history %v, want all %d messages in time order", got.MessageIDs, n)
	}
	if got.MessageID != fmt.Sprintf("M%02d", n-1) || !got.UpdatedAt.Equal(us(t0.Add((n-1)*time.Second))) {
		t.Errorf("order = %s at %v, want the newest message M%02d", got.MessageID, got.UpdatedAt, n-1)
	}
}

// testPutOrders records a pass of order messages in one call: each order as PutOrder would,
// two messages of one accession merged in the order given, and a batch with an order that
// has no accession refused before any of it is written.
func testPutOrders(t *testing.T, s store.Store) {
	first := order("B1", t0)
	update := store.Order{Accession: "B1", Status: "IP", MessageID: "M-B1-ip", Channel: "ris-orders",
		UpdatedAt: t0.Add(time.Minute)}
	other := order("A9", t0)
	if err := s.PutOrders(t.Context(), []store.Order{first, other, update}); err != nil {
		t.Fatal(err)
	}
	want := first
	want.Status, want.MessageID = "IP", "M-B1-ip"
	want.OrderedAt, want.UpdatedAt = us(first.OrderedAt), us(update.UpdatedAt)
	want.MessageIDs = []string{"M-B1", "M-B1-ip"}
	if got := getOrder(t, s, "B1"); !reflect.DeepEqual(got, want) {
		t.Errorf("B1 after one batch:\n got %+v\nwant %+v", got, want)
	}
	if got := getOrder(t, s, "A9"); got.MessageID != "M-A9" || len(got.MessageIDs) != 1 {
		t.Errorf("A9 after one batch: %+v", got)
	}
	if err := s.PutOrders(t.Context(), nil); err != nil {
		t.Errorf("PutOrders(nil): %v", err)
	}

	err := s.PutOrders(t.Context(), []store.Order{order("C1", t0), {PatientID: "no accession"}})
	if !errors.Is(err, store.ErrInvalidOrder) {
		t.Fatalf("a batch with an order without accession: %v, want ErrInvalidOrder", err)
	}
	if _, err := s.Order(t.Context(), "C1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the refused batch wrote C1: %v", err)
	}
}
