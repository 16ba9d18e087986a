package main

import "testing"

func TestParseRedisInfo(t *testing.T) {
	info := "# Commandstats\r\n" +
		"cmdstat_evalsha:calls=1000,usec=8000,usec_per_call=8.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_eval:calls=1,usec=20,usec_per_call=20.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_info:calls=7,usec=70,usec_per_call=10.00,rejected_calls=0,failed_calls=0\r\n" +
		"\r\n# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:2.250000\r\nused_cpu_sys_children:9.000000\r\n"
	st, err := parseRedisInfo(info)
	if err != nil {
		t.Fatal(err)
	}
	want := redisStats{scripts: 1001, commands: 1008, cpu: 3.75}
	if st != want {
		t.Fatalf("got %+v, want %+v", st, want)
	}
}
