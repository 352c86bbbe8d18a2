/// <reference types="vitest/config" />
import { defineConfig } from "vite";

// The gateway serves the build at / (gateway/internal/console): index.html is revalidated on every
// load, and everything under assets/ is content-hashed and cached for good.
export default defineConfig({
  base: "/",
  build: {
    // Next to the gateway binary, where the gateway looks for it by default (never committed).
    outDir: "../../bin/console",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: true,
    // Everything is a file of its own: the gateway's CSP allows no inline code.
    assetsInlineLimit: 0,
  },
  server: {
    // `npm run dev` against a running gateway (MGX_API, default the `make run` address).
    proxy: {
      "/api": { target: process.env.MGX_API ?? "http://127.0.0.1:8000", ws: true },
    },
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
