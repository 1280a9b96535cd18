package admin_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"

	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/admin"
	"github.com/osprey-health/osprey/engine/store/sqlite"
)

func ExampleNew() {
	st, err := sqlite.Open(context.Background(), sqlite.Memory, sqlite.Options{})
	if err != nil {
		panic(err)
	}
	defer st.Close()
	srv := admin.New(admin.Options{
		Engine: &fakeEngine{channels: []engine.ChannelStatus{{Name: "adt", State: engine.StateRunning, Source: "source.mllp"}}},
		Store:  st,
		Tokens: []admin.Token{{Name: "ops", Token: "s3cret-0123456789abcdef", Role: admin.RoleAdmin}},
		Logger: slog.New(slog.DiscardHandler),
	})

	req := httptest.NewRequest("GET", "/api/v1/channels/adt", nil)
	req.Header.Set("Authorization", "Bearer s3cret-0123456789abcdef")
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	fmt.Println(rec.Code, rec.Body.String())

	rec = httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest("POST", "/api/v1/reload", nil))
	fmt.Println(rec.Code, rec.Header().Get("WWW-Authenticate"), rec.Body.String())
	// Output:
	// 200 {"name":"adt","state":"running","source":"source.mllp","counters":{"received":0,"rejected":0,"filtered":0,"sent":0,"errored":0,"queued":0},"destinations":[]}
	//
	// 401 Bearer realm="osprey" {"error":"missing bearer token","status":401}
}
