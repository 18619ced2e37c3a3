package store_test

import (
	"reflect"
	"testing"

	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/store"
)

// TestTestConfigIsConfigsDefault: the store's own tests read checkd's
// defaults from configs/checkd.yaml themselves (they cannot import
// configs); that reading equals configs.Default's.
func TestTestConfigIsConfigsDefault(t *testing.T) {
	t.Parallel()
	got := store.TestConfig(t)
	got.Cipher = nil
	if want := configs.Default().StoreConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("the store tests' defaults\n %+v\ndiffer from configs.Default().StoreConfig()\n %+v", got, want)
	}
}
