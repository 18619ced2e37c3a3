package configs

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// SentinelScheme is the scheme of a redisURL naming a Redis that Sentinel
// manages.
const SentinelScheme = "redis+sentinel"

// RedisURL is a parsed redisURL: a single Redis (redis://, rediss://) or
// one managed by Sentinel (redis+sentinel://).
type RedisURL struct {
	// Single are the options of a single Redis; nil for Sentinel.
	Single *redis.Options
	// Sentinel are the options of a Sentinel-managed Redis; nil otherwise.
	Sentinel *redis.FailoverOptions
}

// Addr names the Redis in messages, without credentials: host:port, or
// the master's name and its sentinels.
func (u RedisURL) Addr() string {
	if u.Sentinel != nil {
		return fmt.Sprintf("master %q of sentinels %s", u.Sentinel.MasterName, strings.Join(u.Sentinel.SentinelAddrs, ","))
	}
	return u.Single.Addr
}

// ParseRedisURL reads a redisURL:
//
//	redis://[user:password@]host:port/db (or rediss:// for TLS), as go-redis reads it;
//	redis+sentinel://[user:password@]host:port[,host:port...]/master[/db][?sentinelPassword=...&sentinelUsername=...]
//
// In the sentinel form the hosts are the sentinels', master is the name
// they monitor, the user and password are the Redis servers' (primary and
// replicas), and sentinelUsername and sentinelPassword the sentinels' own
// when they require one. Errors never quote the URL (it may hold a
// password).
func ParseRedisURL(s string) (RedisURL, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || !strings.EqualFold(scheme, SentinelScheme) {
		o, err := redis.ParseURL(s)
		if err != nil {
			return RedisURL{}, urlError(err)
		}
		return RedisURL{Single: o}, nil
	}
	rest, rawQuery, _ := strings.Cut(rest, "?")
	o := &redis.FailoverOptions{}
	if at := strings.LastIndex(rest, "@"); at >= 0 && at < strings.IndexByte(rest+"/", '/') {
		user, pass, hasPass := strings.Cut(rest[:at], ":")
		var err error
		if o.Username, err = url.PathUnescape(user); err != nil {
			return RedisURL{}, errors.New("the user name is not URL-encoded correctly")
		}
		if hasPass {
			if o.Password, err = url.PathUnescape(pass); err != nil {
				return RedisURL{}, errors.New("the password is not URL-encoded correctly")
			}
		}
		rest = rest[at+1:]
	}
	hosts, path, _ := strings.Cut(rest, "/")
	for _, h := range strings.Split(hosts, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			host, port = h, "26379"
		}
		if host == "" {
			return RedisURL{}, fmt.Errorf("sentinel address %q has no host", h)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return RedisURL{}, fmt.Errorf("sentinel address %q has no valid port", h)
		}
		o.SentinelAddrs = append(o.SentinelAddrs, net.JoinHostPort(host, port))
	}
	if len(o.SentinelAddrs) == 0 {
		return RedisURL{}, errors.New("no sentinel address: give host:port[,host:port...] after redis+sentinel://")
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if parts[0] == "" {
		return RedisURL{}, errors.New("no master name: give the name the sentinels monitor after the addresses, as in redis+sentinel://host:26379/mymaster/0")
	}
	o.MasterName = parts[0]
	switch len(parts) {
	case 1:
	case 2:
		db, err := strconv.Atoi(parts[1])
		if err != nil || db < 0 {
			return RedisURL{}, fmt.Errorf("database %q is not a number", parts[1])
		}
		o.DB = db
	default:
		return RedisURL{}, errors.New("too many path segments: want /master or /master/db")
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return RedisURL{}, errors.New("the query is not URL-encoded correctly")
	}
	for k, v := range q {
		switch k {
		case "sentinelPassword":
			o.SentinelPassword = v[len(v)-1]
		case "sentinelUsername":
			o.SentinelUsername = v[len(v)-1]
		default:
			return RedisURL{}, fmt.Errorf("unknown parameter %q: the sentinel form takes sentinelPassword and sentinelUsername", k)
		}
	}
	return RedisURL{Sentinel: o}, nil
}
