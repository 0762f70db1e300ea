// Upload a photo: POST /align (multipart) without boxes finds and aligns every face at once; dragging a box
// aligns that face instead. `?image=<url>[&box=x1,y1,x2,y2]&dataset=300w[&small=1]` does the same without a mouse
// (used by the browser test).
(() => {
  const canvas = document.getElementById("canvas");
  const ctx = canvas.getContext("2d");
  const fileInput = document.getElementById("file");
  const datasetSelect = document.getElementById("dataset");
  const keyInput = document.getElementById("apikey");
  const alignButton = document.getElementById("align");
  const statusEl = document.getElementById("status");
  const modelEl = document.getElementById("model");
  const countEl = document.getElementById("count");
  const facesEl = document.getElementById("faces");
  const flipInput = document.getElementById("flip");
  const recropInput = document.getElementById("recrop");
  const smallInput = document.getElementById("small");
  const SMALL_FACE_PX = 40;  // what "Small faces" looks for: the service scans tiles of the photo for them
  const timingEl = document.getElementById("timing");

  let image = null;      // HTMLImageElement
  let imageBlob = null;  // what is uploaded
  let scale = 1;         // canvas px per image px
  let box = null;        // [x1, y1, x2, y2] in image px
  let dragStart = null;
  let faces = [];

  keyInput.value = localStorage.getItem("sdhrnet.apikey") || "";
  keyInput.addEventListener("change", () => localStorage.setItem("sdhrnet.apikey", keyInput.value));

  function setStatus(text, state) {
    statusEl.textContent = text;
    statusEl.dataset.state = state;
  }

  function draw() {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!image) return;
    ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
    if (box) {
      ctx.strokeStyle = "#00c853";
      ctx.lineWidth = 2;
      ctx.strokeRect(box[0] * scale, box[1] * scale, (box[2] - box[0]) * scale, (box[3] - box[1]) * scale);
    }
    ctx.strokeStyle = "#2979ff";  // detected faces: the box the landmarks were cropped around
    ctx.lineWidth = 2;
    for (const face of faces) {
      if (face.detection_score == null) continue;
      const [x1, y1, x2, y2] = face.box;
      // a tilted face's box is in its own upright frame: turned by box_roll about its centre (clockwise on screen)
      ctx.save();
      ctx.translate((x1 + x2) / 2 * scale, (y1 + y2) / 2 * scale);
      ctx.rotate((face.box_roll || 0) * Math.PI / 180);
      ctx.strokeRect(-(x2 - x1) / 2 * scale, -(y2 - y1) / 2 * scale, (x2 - x1) * scale, (y2 - y1) * scale);
      ctx.restore();
    }
    ctx.fillStyle = "#ff1744";
    const radius = Math.max(2.5, Math.min(canvas.width, canvas.height) / 200);
    for (const face of faces) {
      for (const [x, y] of face.landmarks) {
        ctx.beginPath();
        ctx.arc(x * scale, y * scale, radius, 0, 2 * Math.PI);
        ctx.fill();
      }
    }
  }

  function loadImage(blob) {
    return new Promise((resolve, reject) => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => reject(new Error("the browser cannot read this file as an image"));
      img.src = URL.createObjectURL(blob);
    });
  }

  async function showImage(blob) {
    image = await loadImage(blob);
    imageBlob = blob;
    const maxWidth = Math.min(860, document.body.clientWidth || 860);
    scale = Math.min(1, maxWidth / image.naturalWidth, 640 / image.naturalHeight);
    canvas.width = Math.round(image.naturalWidth * scale);
    canvas.height = Math.round(image.naturalHeight * scale);
    box = null;
    faces = [];
    alignButton.disabled = false;
    draw();
  }

  function showResult(model, faceCount, landmarkCount, timing) {
    modelEl.textContent = model;
    facesEl.textContent = String(faceCount);
    countEl.textContent = String(landmarkCount);
    timingEl.textContent = timing;
  }

  // only the datasets the service has a model loaded for, as /readyz lists them
  async function loadDatasets(wanted) {
    let models = {};
    try {
      models = (await (await fetch("/readyz")).json()).models || {};
    } catch (err) {
      setStatus(`The service did not answer: ${err.message}`, "error");
      return;
    }
    const served = Object.keys(models);
    datasetSelect.replaceChildren(...served.map(
      (d) => new Option(`${d.toUpperCase()} (${models[d].num_landmarks} points)`, d)));
    if (served.includes(wanted)) datasetSelect.value = wanted;
    if (!served.length) setStatus("No model is served yet: train one, or promote one with POST /models/{dataset}/promote.", "error");
  }

  function toImage(event) {
    const rect = canvas.getBoundingClientRect();
    const x = (event.clientX - rect.left) * (canvas.width / rect.width) / scale;
    const y = (event.clientY - rect.top) * (canvas.height / rect.height) / scale;
    return [Math.max(0, Math.min(image.naturalWidth, x)), Math.max(0, Math.min(image.naturalHeight, y))];
  }

  // pointer events: the same drag with a mouse, a pen or a finger
  canvas.addEventListener("pointerdown", (e) => {
    if (!image) return;
    canvas.setPointerCapture(e.pointerId);
    dragStart = toImage(e);
    faces = [];
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!dragStart) return;
    const [x, y] = toImage(e);
    box = [Math.min(dragStart[0], x), Math.min(dragStart[1], y), Math.max(dragStart[0], x), Math.max(dragStart[1], y)];
    draw();
  });
  const endDrag = () => {
    if (!dragStart) return;
    dragStart = null;
    if (box && box[2] - box[0] > 4 && box[3] - box[1] > 4) align();
  };
  canvas.addEventListener("pointerup", endDrag);
  canvas.addEventListener("pointercancel", endDrag);

  // with a dragged box: that face; without one: the service detects every face
  async function align() {
    if (!imageBlob) return;
    if (!datasetSelect.value) {
      setStatus("No model is served yet: train one, or promote one with POST /models/{dataset}/promote.", "error");
      return;
    }
    setStatus(box ? "Finding landmarks…" : "Finding faces…", "busy");
    const form = new FormData();
    form.append("image", imageBlob, "photo");
    if (box) form.append("boxes", JSON.stringify([box.map((v) => Math.round(v * 10) / 10)]));
    const headers = keyInput.value ? { "X-API-Key": keyInput.value } : {};
    const query = `dataset=${encodeURIComponent(datasetSelect.value)}${flipInput.checked ? "&flip=true" : ""}` +
      `&recrop=${recropInput.checked}` +  // explicit: the service's default leaves dragged boxes at one pass
      (smallInput.checked && !box ? `&small_faces=true&min_face_size=${SMALL_FACE_PX}` : "");
    try {
      const response = await fetch(`/align?${query}`, { method: "POST", body: form, headers });
      const body = await response.json();
      if (!response.ok) {
        faces = [];
        showResult("–", 0, 0, "");  // nothing on the page may describe a previous answer
        draw();
        setStatus(`${body.title || response.status}: ${body.detail || ""}`, "error");
        return;
      }
      faces = body.faces;
      showResult(`${body.model.name} v${body.model.version} (${body.model.alias})`, faces.length,
                 faces.reduce((n, f) => n + f.landmarks.length, 0), `${body.timing_ms.total.toFixed(1)} ms`);
      draw();
      // tiles were scanned: say how small a face was looked for, which the tile limit may keep above what was asked
      // and how many of the tiles' finds the landmark network saw no face in
      const doubted = body.detection && body.detection.not_faces ?
        `; ${body.detection.not_faces} left out as no face` : "";
      const tiles = body.detection ? body.detection.looks - 1 - (body.detection.upside_down_look ? 1 : 0) : 0;
      const reach = tiles > 0 ?
        ` (searched down to ${Math.round(Math.max(SMALL_FACE_PX, body.detection.smallest_face))} px${doubted})` : "";
      if (box) setStatus("Done. Drag another box to try again.", "done");
      else if (faces.length) setStatus(`Found ${faces.length} face${faces.length > 1 ? "s" : ""}${reach}. Drag a box to pick one yourself.`, "done");
      else setStatus(`No face found${reach}. Drag a box around a face.`, "ready");
    } catch (err) {
      showResult("–", 0, 0, "");
      setStatus(`Request failed: ${err.message}`, "error");
    }
  }

  fileInput.addEventListener("change", async () => {
    const file = fileInput.files[0];
    if (!file) return;
    try { await showImage(file); } catch (err) { setStatus(err.message, "error"); return; }
    await align();
  });
  alignButton.addEventListener("click", () => { box = null; align(); });
  datasetSelect.addEventListener("change", () => { if (image) align(); });
  flipInput.addEventListener("change", () => { if (image) align(); });
  recropInput.addEventListener("change", () => { if (image) align(); });
  smallInput.addEventListener("change", () => { if (image && !box) align(); });

  const params = new URLSearchParams(location.search);
  (async () => {
    await loadDatasets(params.get("dataset") || "300w");
    smallInput.checked = params.get("small") === "1";
    if (!params.get("image")) return;
    try {
      const response = await fetch(params.get("image"));
      await showImage(await response.blob());
      const b = (params.get("box") || "").split(",").map(Number);
      if (b.length === 4 && b.every(Number.isFinite)) { box = b; draw(); }
      await align();
    } catch (err) { setStatus(`Could not load ${params.get("image")}: ${err.message}`, "error"); }
  })();
})();
