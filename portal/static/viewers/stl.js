// The 3D viewer for STL models (binary and ASCII): three.js's STLLoader and
// OrbitControls; drag to rotate, wheel or pinch to zoom, right-drag or two
// fingers to move, the toolbar to zoom and reset. Draws only when the view
// changes, so a large scan stays smooth.
import * as THREE from './three.module.js';
import { STLLoader } from './STLLoader.js';
import { OrbitControls } from './OrbitControls.js';

const root = document.querySelector('[data-viewer]');
const stage = root.querySelector('[data-stage]');
const canvas = stage.querySelector('[data-canvas]');
const status = root.querySelector('[data-status]');
const error = root.querySelector('[data-error]');
const unreadable = 'This 3D model could not be shown: the file is damaged or is not an STL model.';

function fail(message) {
  status.textContent = '';
  error.textContent = `${message} Use the Download button to open it in another program.`;
  error.hidden = false;
  root.dataset.state = 'failed';
  stage.hidden = true;
  root.querySelectorAll('.viewer-tools button').forEach((b) => { b.disabled = true; });
}

async function show() {
  const response = await fetch(root.dataset.src, { credentials: 'same-origin' });
  if (!response.ok) throw new Error('The file could not be loaded.');
  const buffer = await response.arrayBuffer();
  let geometry;
  try {
    geometry = new STLLoader().parse(buffer);
  } catch {
    throw new Error(unreadable);
  }
  const position = geometry.getAttribute('position');
  if (!position || position.count < 3) throw new Error(unreadable);
  for (let i = 0; i < Math.min(position.array.length, 300); i += 1) {
    if (!Number.isFinite(position.array[i])) throw new Error(unreadable);
  }
  if (!geometry.getAttribute('normal')) geometry.computeVertexNormals();
  geometry.computeBoundingSphere();
  const { center, radius } = geometry.boundingSphere;
  if (!Number.isFinite(radius) || radius <= 0) throw new Error(unreadable);

  let renderer;
  try {
    renderer = new THREE.WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
  } catch {
    throw new Error('This browser cannot show 3D models (WebGL is turned off or unavailable).');
  }
  renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
  const scene = new THREE.Scene();
  scene.background = new THREE.Color(0xf4f6f8);
  const material = new THREE.MeshStandardMaterial({ color: 0xe8dcc8, roughness: 0.55, metalness: 0.05, side: THREE.DoubleSide });
  const mesh = new THREE.Mesh(geometry, material);
  mesh.position.copy(center).multiplyScalar(-1);
  scene.add(mesh);
  scene.add(new THREE.HemisphereLight(0xffffff, 0x667788, 1.6));
  const light = new THREE.DirectionalLight(0xffffff, 1.8);
  scene.add(light);

  const camera = new THREE.PerspectiveCamera(40, 1, radius / 100, radius * 100);
  camera.position.set(0, -radius * 0.8, radius * 2.6);
  const controls = new OrbitControls(camera, canvas);
  controls.target.set(0, 0, 0);
  controls.update();
  controls.saveState();

  const render = () => {
    light.position.copy(camera.position);
    renderer.render(scene, camera);
  };
  const resize = () => {
    const width = stage.clientWidth;
    const height = stage.clientHeight;
    renderer.setSize(width, height, false);
    camera.aspect = width / height;
    camera.updateProjectionMatrix();
    render();
  };
  controls.addEventListener('change', render);
  new ResizeObserver(resize).observe(stage);
  root.querySelectorAll('[data-zoom]').forEach((button) => {
    button.addEventListener('click', () => {
      const kind = button.dataset.zoom;
      if (kind === 'reset') {
        controls.reset();
      } else {
        const factor = kind === 'in' ? 1 / 1.3 : 1.3;
        const offset = camera.position.clone().sub(controls.target).multiplyScalar(factor);
        camera.position.copy(controls.target).add(offset);
        controls.update();
      }
      render();
    });
  });
  resize();
  status.textContent = '';
  root.dataset.state = 'shown';
  root.dataset.triangles = String(position.count / 3);
}

show().catch((e) => fail(e && e.message && /^(This|The file)/.test(e.message) ? e.message : unreadable));
