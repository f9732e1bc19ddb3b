// Parse and render an OFD file with ofd.js (DLTech21, npm ofd.js@0.2.6) under node + jsdom.
//
//   node ofd_extract.cjs FILE.ofd [SCREEN_WIDTH_PX]
//
// Prints one JSON line on stdout: what ofd.js parsed (pages, fonts, media) and what its
// renderer drew (every SVG <text> glyph with its absolute position in px, the page scale
// in px/mm, path and image counts). ofd.js is a browser library; jsdom supplies the DOM.
// Two gaps in jsdom are bridged here, and only these: <image>.href.baseVal (SVG
// animated strings) and Image.onload for data: URLs (jsdom does not decode images).
"use strict";
const fs = require("fs");
const { JSDOM } = require("jsdom");

// ofd.js logs to stdout; stdout is reserved for the one JSON result line
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
console.log = (...args) => console.error(...args);

const dom = new JSDOM("<!DOCTYPE html><html><body></body></html>", { pretendToBeVisual: true });
const w = dom.window;
Object.defineProperty(w.SVGElement.prototype, "href", {
  configurable: true,
  get() {
    const el = this;
    return {
      get baseVal() { return el.getAttribute("href"); },
      set baseVal(v) { el.setAttribute("href", v); },
    };
  },
});
global.window = w;
global.document = w.document;
global.navigator = w.navigator;
global.DOMParser = w.DOMParser;
global.File = w.File;
global.Blob = w.Blob;
global.FileReader = w.FileReader;
global.btoa = (s) => Buffer.from(s, "binary").toString("base64");
global.atob = (s) => Buffer.from(s, "base64").toString("binary");
global.Image = class {
  set src(url) {
    this._src = url;
    const bytes = Buffer.from(url.slice(url.indexOf(",") + 1), "base64");
    if (bytes.slice(1, 4).toString() === "PNG") {
      this.width = bytes.readUInt32BE(16);
      this.height = bytes.readUInt32BE(20);
    } else {
      this.width = 1;
      this.height = 1;
    }
    setImmediate(() => this.onload && this.onload());
  }
  get src() { return this._src; }
};

const ofd = require("ofd.js/lib/ofd.common.js");
const file = fs.readFileSync(process.argv[2]);
const screenWidth = Number(process.argv[3] || 800);
const buffer = file.buffer.slice(file.byteOffset, file.byteOffset + file.byteLength);
const px = (value) => parseFloat(value || "0");

ofd.parseOfdDocument({
  ofd: buffer,
  success(docs) {
    const doc = docs[0];
    const out = {
      docs: docs.length,
      pages: doc.pages.map((page) => {
        const id = Object.keys(page)[0];
        const area = page[id].json["ofd:Area"];
        return { id, physicalBox: area ? area["ofd:PhysicalBox"] : null };
      }),
      fonts: doc.fontResObj,
      media: Object.keys(doc.multiMediaResObj),
      rendered: [],
    };
    try {
      const divs = ofd.renderOfd(screenWidth, doc);
      out.scale = ofd.getPageScale();
      out.rendered = divs.map((div) => {
        const glyphs = [];
        for (const svg of div.querySelectorAll("svg")) {
          for (const text of svg.querySelectorAll("text")) {
            glyphs.push({
              char: text.textContent,
              x: px(svg.style.left) + px(text.getAttribute("x")),
              y: px(svg.style.top) + px(text.getAttribute("y")),
              fill: text.getAttribute("fill"),
              style: text.getAttribute("style"),
            });
          }
        }
        return {
          text: div.textContent,
          glyphs,
          paths: div.querySelectorAll("path").length,
          images: div.querySelectorAll("image").length,
        };
      });
    } catch (err) {
      out.renderError = String((err && err.stack) || err);
    }
    emit(out);
  },
  fail(err) {
    emit({ error: String((err && err.stack) || err) });
    process.exitCode = 2;
  },
});
