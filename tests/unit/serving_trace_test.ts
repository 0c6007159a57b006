import { assertEquals } from "../helpers/assert.ts";
import { ServingTraceFilter } from "../../runners/serving_trace.ts";

// One streamed request as llama-server logged it at -lv 4 (pinned build, tiny model, warm prompt cache);
// `+` marks the lines it also logs at the default -lv 3, the only ones that must pass.
const REQUEST = `
-0.00.418.571 I srv  server_strea: conv_id= (empty=1)
-0.00.419.111 I slot get_availabl: id  0 | task -1 |  - skipping, slot is empty
-0.00.419.152 I slot get_availabl: id  3 | task -1 |  - checking sim = 0.750 (3/4) > 0.100
+0.00.419.154 I slot get_availabl: id  3 | task -1 | selected slot by LCP similarity, f_sim_best = 0.750 (> 0.100 thold), f_keep = 0.273
-0.00.419.155 I srv  get_availabl: updating prompt cache
-0.00.419.189 I srv   prompt_save:  - saving prompt with length 11, total state size = 0.006 MiB (draft: 0.000 MiB)
-0.00.419.246 I srv          load:  - looking for better prompt, base f_keep = 0.273, f_sim = 0.750
-0.00.419.269 I srv          load:    - prompt with length      11, lcp =       3, f_keep = 0.273, f_sim = 0.750
-0.00.419.276 I srv        update:  - cache state: 3 prompts, 0.017 MiB (limits: 2048.000 MiB, 1024 tokens, 4039384 est)
-0.00.419.277 I srv        update:    - prompt 0x562ca5789ab0:      11 tokens, checkpoints:  0,     0.006 MiB
-0.00.419.280 I srv  get_availabl: prompt cache update took 0.12 ms
-0.00.419.373 I slot launch_slot_: id  3 | task -1 | sampler chain: logits -> ?penalties -> top-k -> dist
-0.00.419.405 I slot launch_slot_: id  3 | task -1 | sampler params: 
-\trepeat_last_n = 64, repeat_penalty = 1.000, frequency_penalty = 0.000, presence_penalty = 0.000
-\tmirostat = 0, mirostat_lr = 0.100, mirostat_ent = 5.000, adaptive_target = -1.000, adaptive_decay = 0.900
+0.00.419.408 I slot launch_slot_: id  3 | task 27 | processing task, is_child = 0
-0.00.419.410 I slot process_sing: id  0 | task -1 | saving idle slot to prompt cache
-0.00.419.428 I slot   operator(): id  3 | task 27 | new prompt, n_ctx_slot = 256, n_keep = 0, task.n_tokens = 4
+0.00.419.440 W slot   operator(): id  3 | task 27 | n_past was set to 2
-0.00.419.444 I slot   operator(): id  3 | task 27 | cached n_tokens = 3, memory_seq_rm [3, end)
-0.00.419.503 I slot init_sampler: id  3 | task 27 | init sampler, took 0.00 ms, tokens: text = 4, total = 4
+0.00.422.462 I slot print_timing: id  3 | task 27 | prompt eval time =       1.45 ms /     1 tokens
+0.00.422.470 I slot print_timing: id  3 | task 27 |    graphs reused =         31
+0.00.422.485 I slot      release: id  3 | task 27 | stop processing: n_tokens = 11, truncated = 0
-0.00.422.497 I srv  update_slots: all slots are idle
+llama_kv_cache:        CPU KV buffer size =     1.00 MiB
+	a tab-indented line after a kept one stays
`.trim().split("\n").map((l) => ({ keep: l[0] === "+", line: l.slice(1) }));

Deno.test("serving trace: a request's trace lines are dropped, its -lv 3 lines and warnings kept", () => {
  const filter = new ServingTraceFilter();
  const kept = REQUEST.filter((l) => filter.keep(l.line)).map((l) => l.line);
  assertEquals(kept, REQUEST.filter((l) => l.keep).map((l) => l.line));
});

Deno.test("serving trace: lines without llama-server's prefix (--no-log-prefix) are told apart too", () => {
  const filter = new ServingTraceFilter();
  assertEquals(filter.keep("srv  get_availabl: prompt cache update took 0.12 ms"), false);
  assertEquals(filter.keep("slot      release: id  3 | task 27 | stop processing: n_tokens = 11"), true);
  assertEquals(filter.keep("srv  update_slots: all slots are idle"), false);
});
