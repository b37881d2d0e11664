// The shared editor: CodeMirror 6 bound to the Y.Text "content" by y-codemirror.next, over a
// stock y-websocket provider. Read-only until the server has said the caller's role.
import * as Y from "yjs";
import { WebsocketProvider } from "y-websocket";
import { yCollab, yUndoManagerKeymap } from "y-codemirror.next";
import { Compartment, EditorState, RangeSetBuilder } from "@codemirror/state";
import {
  Decoration,
  EditorView,
  ViewPlugin,
  drawSelection,
  highlightActiveLine,
  keymap,
  lineNumbers,
} from "@codemirror/view";
import { defaultKeymap, indentWithTab } from "@codemirror/commands";

// Every line takes its own direction from its first strong character (Arabic, Hebrew… lines
// run right to left, Latin ones left to right), and CodeMirror reads it per line.
const autoDirLine = Decoration.line({ attributes: { dir: "auto" } });
const perLineDirection = ViewPlugin.fromClass(
  class {
    constructor(view) {
      this.decorations = this.build(view);
    }
    update(update) {
      if (update.docChanged || update.viewportChanged) this.decorations = this.build(update.view);
    }
    build(view) {
      const builder = new RangeSetBuilder();
      for (const { from, to } of view.visibleRanges) {
        for (let pos = from; pos <= to; ) {
          const line = view.state.doc.lineAt(pos);
          builder.add(line.from, line.from, autoDirLine);
          pos = line.to + 1;
        }
      }
      return builder.finish();
    }
  },
  { decorations: (plugin) => plugin.decorations },
);

export function createEditor(parent, shareToken, me) {
  const ydoc = new Y.Doc();
  const ytext = ydoc.getText("content");
  const wsBase = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  // The login token rides in the same-origin cookie; no credentials in the URL.
  const provider = new WebsocketProvider(wsBase, shareToken, ydoc, {
    params: { protocol: "yjs" },
    maxBackoffTime: 2000,
  });
  provider.awareness.setLocalStateField("user", {
    id: me.id,
    name: me.name,
    color: me.color,
    colorLight: `${me.color}33`,
  });
  const undoManager = new Y.UndoManager(ytext);
  const editable = new Compartment();
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc: ytext.toString(),
      extensions: [
        lineNumbers(),
        drawSelection(),
        highlightActiveLine(),
        EditorView.lineWrapping,
        EditorView.perLineTextDirection.of(true),
        perLineDirection,
        keymap.of([...yUndoManagerKeymap, ...defaultKeymap, indentWithTab]),
        yCollab(ytext, provider.awareness, { undoManager }),
        editable.of(readOnly(true)),
        EditorView.contentAttributes.of({ "aria-label": "Prompt text", spellcheck: "false" }),
      ],
    }),
  });

  return {
    ydoc,
    ytext,
    provider,
    view,
    setEditable(canEdit) {
      view.dispatch({ effects: editable.reconfigure(readOnly(!canEdit)) });
    },
    destroy() {
      view.destroy();
      provider.destroy();
      ydoc.destroy();
    },
  };
}

function readOnly(on) {
  return [EditorState.readOnly.of(on), EditorView.editable.of(!on)];
}
