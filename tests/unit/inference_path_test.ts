import { assertEquals } from "../helpers/assert.ts";
import { pathAndQueryOf } from "../../router/routes/inference.ts";

Deno.test("the path and query a proxied request is sent on, as the URL parser gives them", () => {
  for (
    const url of [
      "http://127.0.0.1:8080/v1/chat/completions",
      "http://127.0.0.1:8080/props?model=a%2Fb&autoload=0",
      "http://[::1]:8080/slots/0?action=save",
      "http://localhost/",
      "http://localhost",
      "http://h:1/a//b?c=//d",
    ]
  ) {
    const parsed = new URL(url);
    assertEquals(pathAndQueryOf(url), parsed.pathname + parsed.search, url);
  }
});
