package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/store"
)

// Example creates a company and a sandbox connection over HTTP, then lists
// the company's PENDING connections.
func Example() {
	mr, err := miniredis.Run()
	if err != nil {
		log.Fatal(err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	key, err := store.GenerateKey()
	if err != nil {
		log.Fatal(err)
	}
	cipher, err := store.NewCipher(key)
	if err != nil {
		log.Fatal(err)
	}
	stCfg := configs.Default().StoreConfig() // checkd's defaults
	stCfg.Cipher = cipher
	st, err := store.New(rdb, stCfg)
	if err != nil {
		log.Fatal(err)
	}
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	cfg := api.ConfigFrom(configs.Default()) // checkd's defaults
	cfg.APIKeys = []string{"demo-key"}
	cfg.Datasources = func() []string { return []string{"sandbox"} }
	cfg.Logger = quiet
	srv, err := api.New(st, cfg)
	if err != nil {
		log.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	call := func(method, path, body string, out any) int {
		req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		if err != nil {
			log.Fatal(err)
		}
		req.Header.Set("X-API-Key", "demo-key")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			log.Fatal(err)
		}
		return resp.StatusCode
	}

	var co store.Company
	fmt.Println(call("POST", "/v1/company", `{"name":"Acme"}`, &co), co.Name)

	var cn api.Connection
	code := call("POST", "/v1/connection/company/"+co.ID,
		`{"datasource":"sandbox","name":"Electric","credentials":{"username":"user_good","password":"s3cret"}}`, &cn)
	fmt.Println(code, cn.Status, cn.StatusDisplayName, cn.CanRefresh)

	var bad api.ErrorResponse
	code = call("GET", "/v1/connection/company/"+co.ID+"?status=BROKEN", "", &bad)
	fmt.Println(code, bad.Error.Code)

	var page api.ConnectionPage
	call("GET", "/v1/connection/company/"+co.ID+"?status=PENDING", "", &page)
	fmt.Println(len(page.Connections), page.Connections[0].Name)
	// Output:
	// 201 Acme
	// 201 PENDING Pending true
	// 400 invalid_request
	// 1 Electric
}
