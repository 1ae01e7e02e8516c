"""A matrix of hostile-but-realistic inputs, each in its own forked process: crash, hang, silent result or clear error.

    python benchmarks/hostile_inputs.py [--json] [CASE ...]
    PYTHONPATH=/path/to/another/checkout python benchmarks/hostile_inputs.py   # the same matrix on other code

The parent imports unimix once; every case runs in a child forked from it (memory capped at 12 GB,
killed after 60 s) and is classified from how the child ends:

- ``clear``: a ``ValueError`` / ``TypeError`` / ``FileNotFoundError`` / ``FloatingPointError`` (for CLI
  cases: exit status 2 and a one-line message, no traceback), as expected;
- ``ok``: the case expects a result and its own assertions on it passed (float16 inputs converted,
  meshes predicted, a warning given);
- ``SILENT``: it returned (or its assertion on the result failed) where an error was due;
- ``UNCLEAR``: another exception (from torch, numpy, safetensors ...), or a CLI traceback;
- ``CRASH``: killed by a signal (a segfault); ``HANG``: still running after the timeout;
- ``LOSS`` (cases ``l_``, expecting ``keeps``): a good save is made, then a failing or interrupted
  save into the same place (refused extra keys, NaN weights, a full disk, SIGKILLs); the case then
  loads what is there and checks it is the good save (or a later complete one). ``ok`` if it is,
  ``LOSS`` if the earlier save is gone, unloadable or inconsistent.

The cases are grouped by boundary: graphs (``g_``, ``x_g_``), point clouds (``p_``, ``x_pc_``), images
(``i_``, ``x_img_``), sizes at build time (``b_``), files and checkpoints (``f_``), CLI (``c_``),
Trainer and labels (``t_``), and the rest of the public API (``y_``, ``pred_``, ``extra_``).
"""
import argparse
import collections
import contextlib
import io
import json
import os
import re
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path

# This checkout's unimix, unless PYTHONPATH names another one (its entries come first on sys.path).
sys.path.insert(1 + len([p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]), str(Path(__file__).resolve().parents[1]))

PRE = """
import os, sys, warnings, resource
import torch, numpy as np
torch.set_num_threads(1)
import unimix
from torch_geometric.data import Data, Batch
T = os.environ['PROBE_TMP']
def gmodel(**kw):
    torch.manual_seed(0)
    return unimix.create_model('unimix_t', tokenizer='graph', num_classes=3, dim=32, depth=1, tokenizer_kwargs=kw).eval()
def pmodel(**kw):
    torch.manual_seed(0)
    return unimix.create_model('unimix_t', tokenizer='pointcloud', num_classes=3, dim=32, depth=1, tokenizer_kwargs=dict(num_groups=8, group_size=8, **kw)).eval()
def imodel():
    torch.manual_seed(0)
    return unimix.create_model('unimix_t', tokenizer='image', num_classes=3, dim=32, depth=1, tokenizer_kwargs=dict(img_size=32, patch_size=8)).eval()
def ring(n, f=4):
    s = torch.arange(n); d = (s + 1) % n
    return Data(x=torch.randn(n, f), edge_index=torch.stack([torch.cat([s, d]), torch.cat([d, s])]))
"""

CASES = {
 "gseg_1e6": ("m=gmodel(encoder='hops'); m(Data(x=torch.randn(5,4), edge_index=torch.tensor([[0,1_000_000],[1,2]])))", "error"),
 "gseg_1e6_gin": ("m=gmodel(); m(Data(x=torch.randn(5,4), edge_index=torch.tensor([[0,1_000_000],[1,2]])))", "error"),
 "gnode_1e6": ("m=unimix.create_model('unimix_t', tokenizer='graph', task='segmentation', num_classes=3, dim=32, depth=1); m(Data(x=torch.randn(5,4), edge_index=torch.tensor([[0,1_000_000],[1,2]])))", "error"),
 "g_idx_eq_n": ("m=gmodel(encoder='hops'); m(Data(x=torch.randn(5,4), edge_index=torch.tensor([[0,5],[1,2]])))", "error"),
 "g_transposed": ("m=gmodel(encoder='hops'); m(Data(x=torch.randn(5,4), edge_index=torch.tensor([[0,1],[1,2],[2,3]])))", "error"),
 "g_1d": ("m=gmodel(encoder='hops'); m(Data(x=torch.randn(5,4), edge_index=torch.tensor([0,1,2])))", "error"),
 "g_negative": ("m=gmodel(); m(Data(x=torch.randn(5,4), edge_index=torch.tensor([[0,-1],[1,2]])))", "error"),
 "g_negative_node": ("m=unimix.create_model('unimix_t', tokenizer='graph', task='segmentation', num_classes=3, dim=32, depth=1); m(Data(x=torch.randn(5,4), edge_index=torch.tensor([[0,-1],[1,2]])))", "error"),
 "g_float_ei": ("m=gmodel(); m(Data(x=torch.randn(5,4), edge_index=torch.tensor([[0.,1],[1,2]])))", "error"),
 "g_empty_last": ("m=gmodel(); b=Batch.from_data_list([ring(4), ring(3), Data(x=torch.empty(0,4), edge_index=torch.empty(2,0,dtype=torch.long))]); out=m(b); assert out.shape[0]==3, out.shape", "error_or_ok"),
 "g_empty_middle": ("m=gmodel(); b=Batch.from_data_list([ring(4), Data(x=torch.empty(0,4), edge_index=torch.empty(2,0,dtype=torch.long)), ring(3)]); out=m(b); assert out.shape[0]==3 and torch.isfinite(out).all(), out", "error_or_ok"),
 "g_unsorted_batch": ("m=gmodel(); g=ring(6); g.batch=torch.tensor([0,1,0,1,0,1]); m(g)", "error"),
 "g_nan_edge_attr": ("m=gmodel(edge_dim=2); g=ring(4); g.edge_attr=torch.full((8,2), float('nan')); m(g)", "error"),
 "g_nan_hops": ("m=unimix.create_model('unimix_t', tokenizer='graph', task='segmentation', num_classes=3, dim=32, depth=1); m(torch.full((4,4,5), float('nan')))", "error"),
 "g_nan_x": ("m=gmodel(); g=ring(4); g.x[0,0]=float('nan'); m(g)", "error"),
 "g_data_hops_nan": ("m=gmodel(encoder='hops'); g=ring(4); g.hops=torch.full((4,4,4), float('nan')); m(g)", "error"),
 "g_padding_blowup": ("import warnings\nm=gmodel()\nb=Batch.from_data_list([ring(2000)] + [ring(3) for _ in range(100)])\nwith warnings.catch_warnings(record=True) as w:\n    warnings.simplefilter('always'); m(b)\nassert any('pad' in str(x.message) for x in w), [str(x.message) for x in w]", "ok"),
 "p_empty_last_cloud": ("m=pmodel(); b=Batch(pos=torch.randn(40,3), batch=torch.tensor([0]*20+[1]*20)); b._num_graphs=3; out=m(b); assert out.shape[0]==3, out.shape", "error_or_ok"),
 "p_empty_last_cloud2": ("m=pmodel(); b=Batch.from_data_list([Data(pos=torch.randn(20,3)), Data(pos=torch.randn(20,3)), Data(pos=torch.empty(0,3))]); out=m(b); assert out.shape[0]==3, out.shape", "error_or_ok"),
 "p_unsorted_batch": ("m=pmodel(); b=Data(pos=torch.randn(40,3), batch=torch.tensor([0,1]*20)); m(b)", "error"),
 "p_huge_coords": ("m=pmodel(); x=torch.rand(2,64,3,dtype=torch.float64)*3.4e308-1.7e308; m(x)", "error"),
 "p_huge_coords_knn": ("from unimix.ops.grouping import knn; x=torch.rand(1,64,3,dtype=torch.float64)*3.4e308-1.7e308; knn(x[:,:8], x, 8)", "error_or_ok"),
 "p_1e20": ("m=pmodel(); x=torch.randn(2,64,3)*1e20; m(x)", "error"),
 "p_fp16": ("m=pmodel(); out=m(torch.randn(2,64,3).half()); assert torch.isfinite(out).all()", "error_or_ok"),
 "p_fp64": ("m=pmodel(); out=m(torch.randn(2,64,3).double())", "error_or_ok"),
 "p_bf16": ("m=pmodel(); out=m(torch.randn(2,64,3).bfloat16())", "error_or_ok"),
 "p_int": ("m=pmodel(); out=m(torch.randint(0,5,(2,64,3)))", "error"),
 "p_channels_first": ("m=pmodel()\ntry:\n    m(torch.randn(2,3,64))\nexcept ValueError as e:\n    assert 'transpose' in str(e) or 'permute' in str(e), e; raise", "error"),
 "i_channels_last": ("m=imodel()\ntry:\n    m(torch.randn(2,32,32,3))\nexcept ValueError as e:\n    assert 'permute' in str(e), e; raise", "error"),
 "i_fp16": ("m=imodel(); m(torch.randn(2,3,32,32).half())", "error_or_ok"),
 "i_fp64": ("m=imodel(); m(torch.randn(2,3,32,32).double())", "error_or_ok"),
 "i_bf16": ("m=imodel(); m(torch.randn(2,3,32,32).bfloat16())", "error_or_ok"),
 "i_nan": ("m=imodel(); x=torch.randn(2,3,32,32); x[0,0,0,0]=float('nan'); m(x)", "error"),
 "i_uint8": ("m=imodel(); m(torch.randint(0,255,(2,3,32,32),dtype=torch.uint8))", "error"),
 "b_group0": ("pmodel(group_size=0) if False else unimix.create_model('unimix_t', tokenizer='pointcloud', num_classes=3, dim=32, depth=1, tokenizer_kwargs=dict(num_groups=8, group_size=0))", "error"),
 "b_num_groups0": ("unimix.create_model('unimix_t', tokenizer='pointcloud', num_classes=3, dim=32, depth=1, tokenizer_kwargs=dict(num_groups=0))", "error"),
 "b_patch0": ("unimix.create_model('unimix_t', tokenizer='image', num_classes=3, dim=32, depth=1, tokenizer_kwargs=dict(img_size=32, patch_size=0))", "error"),
 "b_dim_neg": ("unimix.create_model('unimix_t', tokenizer='image', num_classes=3, dim=-32, depth=1)", "error"),
 "b_depth_neg": ("unimix.create_model('unimix_t', tokenizer='image', num_classes=3, dim=32, depth=-1)", "error"),
 "b_depth_huge": ("unimix.create_model('unimix_t', tokenizer='image', num_classes=3, dim=32, depth=1000000)", "error"),
 "b_dim_huge": ("unimix.create_model('unimix_t', tokenizer='image', num_classes=3, dim=10**9, depth=1)", "error"),
 "b_numcls_neg": ("unimix.create_model('unimix_t', tokenizer='image', num_classes=-1, dim=32, depth=1)", "error"),
 "b_depth_str": ("unimix.create_model('unimix_t', tokenizer='image', num_classes=3, dim=32, depth='2')", "error"),
 "b_num_hops_neg": ("unimix.create_model('unimix_t', tokenizer='graph', num_classes=3, dim=32, depth=1, tokenizer_kwargs=dict(num_hops=-1))", "error"),
 "b_depth_huge_cfg": ("import json; d=T+'/m'; unimix.create_model('unimix_t', tokenizer='image', num_classes=3, dim=32, depth=1, tokenizer_kwargs=dict(img_size=32, patch_size=8)).save_pretrained(d); c=json.load(open(d+'/config.json')); c['model']['depth']=1000000; c['save_id']='x'; open(d+'/config.json','w').write(json.dumps(c))\nfrom safetensors.torch import load_file, save_file\nsd=load_file(d+'/model.safetensors'); save_file(sd, d+'/model.safetensors', metadata={'format':'pt','unimix_config':json.dumps(c)}); unimix.from_pretrained(d)", "error"),
 "f_fifo": ("d=T+'/m'; unimix.create_model('unimix_t', tokenizer='image', num_classes=3, dim=32, depth=1, tokenizer_kwargs=dict(img_size=32, patch_size=8)).save_pretrained(d); os.unlink(d+'/model.safetensors'); os.mkfifo(d+'/model.safetensors'); unimix.from_pretrained(d)", "error"),
 "f_fifo_ply": ("os.mkfifo(T+'/a.ply'); unimix.read_point_cloud(T+'/a.ply')", "error"),
 "f_fifo_cfg": ("from unimix.cli import load_config; os.mkfifo(T+'/a.yaml'); load_config(T+'/a.yaml')", "error"),
 "f_trunc_st": ("d=T+'/m'; unimix.create_model('unimix_t', tokenizer='image', num_classes=3, dim=32, depth=1, tokenizer_kwargs=dict(img_size=32, patch_size=8)).save_pretrained(d); b=open(d+'/model.safetensors','rb').read(); open(d+'/model.safetensors','wb').write(b[:len(b)//2]); unimix.from_pretrained(d)", "error"),
 "f_trunc_hdr": ("d=T+'/m'; unimix.create_model('unimix_t', tokenizer='image', num_classes=3, dim=32, depth=1, tokenizer_kwargs=dict(img_size=32, patch_size=8)).save_pretrained(d); b=open(d+'/model.safetensors','rb').read()\ntry:\n    unimix.from_pretrained(d)\nexcept Exception: raise SystemExit(3)\nopen(d+'/model.safetensors','wb').write(b[:100]); \ntry:\n    unimix.from_pretrained(d)\nexcept ValueError as e:\n    assert 'pickle' not in str(e) and 'truncated' in str(e), e; raise", "error"),
 "f_trunc_ckpt": ("from unimix.train import save_checkpoint, load_checkpoint; m=imodel(); save_checkpoint(T+'/c.safetensors', m); b=open(T+'/c.safetensors','rb').read(); open(T+'/c.safetensors','wb').write(b[:len(b)-10]); load_checkpoint(T+'/c.safetensors', m)", "error"),
 "f_trunc_st_ckpt_hdr": ("from unimix.train import save_checkpoint, load_checkpoint; m=imodel(); save_checkpoint(T+'/c.safetensors', m); b=open(T+'/c.safetensors','rb').read(); open(T+'/c.safetensors','wb').write(b[:50]); load_checkpoint(T+'/c.safetensors', m)", "error"),
 "f_nan_weights": ("d=T+'/m'; m=imodel(); m.head.fc.weight.data[0,0]=float('nan'); m.save_pretrained(d); unimix.from_pretrained(d)", "error"),
 "f_pcd_huge": ("open(T+'/a.pcd','w').write('# .PCD v0.7\\nVERSION 0.7\\nFIELDS x y z\\nSIZE 4 4 4\\nTYPE F F F\\nCOUNT 1 1 1\\nWIDTH 50000000\\nHEIGHT 1\\nVIEWPOINT 0 0 0 1 0 0 0\\nPOINTS 50000000\\nDATA ascii\\n1 2 3\\n'); unimix.read_point_cloud(T+'/a.pcd')", "error"),
 "f_ply_short": ("open(T+'/a.ply','w').write('ply\\nformat ascii 1.0\\nelement vertex 100\\nproperty float x\\nproperty float y\\nproperty float z\\nend_header\\n' + '1 2 3\\n'*60); unimix.read_point_cloud(T+'/a.ply')", "error"),
 "f_ply_huge_ascii": ("open(T+'/a.ply','w').write('ply\\nformat ascii 1.0\\nelement vertex 500000000\\nproperty float x\\nproperty float y\\nproperty float z\\nend_header\\n' + '1 2 3\\n'*60); unimix.read_point_cloud(T+'/a.ply')", "error"),
 "f_ply_huge_bin": ("open(T+'/a.ply','wb').write(b'ply\\nformat binary_little_endian 1.0\\nelement vertex 500000000\\nproperty float x\\nproperty float y\\nproperty float z\\nend_header\\n' + b'\\0'*120); unimix.read_point_cloud(T+'/a.ply')", "error"),
 "f_xyz_1e39": ("open(T+'/a.xyz','w').write('1 2 3\\n1e39 0 0\\n'); unimix.read_point_cloud(T+'/a.xyz')", "error"),
 "f_npy_1e39": ("np.save(T+'/a.npy', np.array([[1,2,3],[1e39,0,0]])); unimix.read_point_cloud(T+'/a.npy')", "error"),
 "f_npy_trunc": ("np.save(T+'/a.npy', np.random.rand(100,3)); b=open(T+'/a.npy','rb').read(); open(T+'/a.npy','wb').write(b[:300]); unimix.read_point_cloud(T+'/a.npy')", "error"),
 "f_npy_garbage": ("open(T+'/a.npy','wb').write(b'hello'); unimix.read_point_cloud(T+'/a.npy')", "error"),
 "f_off_1e39": ("open(T+'/a.off','w').write('OFF\\n3 1 0\\n0 0 0\\n1e39 0 0\\n0 1 0\\n3 0 1 2\\n'); unimix.read_point_cloud(T+'/a.off')", "error"),
 "f_dir_as_ply": ("os.mkdir(T+'/a.ply'); unimix.read_point_cloud(T+'/a.ply')", "error"),
 "f_bin_as_xyz": ("open(T+'/a.xyz','wb').write(bytes(range(256))*4); unimix.read_point_cloud(T+'/a.xyz')", "error"),
 "f_pcd_garbage": ("open(T+'/a.pcd','wb').write(b'garbage\\n'*5); unimix.read_point_cloud(T+'/a.pcd')", "error"),
 "f_ply_nan_ascii": ("open(T+'/a.ply','w').write('ply\\nformat ascii 1.0\\nelement vertex 2\\nproperty float x\\nproperty float y\\nproperty float z\\nend_header\\n1 2 3\\nnan 1 1\\n'); unimix.read_point_cloud(T+'/a.ply')", "error"),
 "f_npz_missing_key": ("from unimix.cli import build_data; np.savez(T+'/a.npz', q=np.zeros(3)); build_data({'kind':'npz','train':T+'/a.npz'}, {})", "error_named"),
 "f_npz_garbage": ("from unimix.cli import build_data; open(T+'/a.npz','wb').write(b'garbage'); build_data({'kind':'npz','train':T+'/a.npz'}, {})", "error_named"),
 "c_yaml_bad": ("from unimix.cli import main; open(T+'/c.yaml','w').write('model: [\\n  : :'); sys.exit(main(['train', T+'/c.yaml']))", "cli"),
 "c_json_bad": ("from unimix.cli import main; open(T+'/c.json','w').write('{'); sys.exit(main(['train', T+'/c.json']))", "cli"),
 "c_dir": ("from unimix.cli import main; os.mkdir(T+'/c.yaml'); sys.exit(main(['train', T+'/c.yaml']))", "cli"),
 "c_seed_abc": ("from unimix.cli import main; open(T+'/c.yaml','w').write('model: {name: unimix_t, tokenizer: pointcloud, num_classes: 12, dim: 16, depth: 1, tokenizer_kwargs: {num_groups: 8, group_size: 8, hidden: 16}}\\ndata: {kind: shapes, num_per_class: 1, num_points: 64}\\ntrain: {epochs: 1, progress: false}\\n'); sys.exit(main(['train', T+'/c.yaml', '--set', 'seed=abc']))", "cli"),
 "c_epochs_abc": ("from unimix.cli import main; open(T+'/c.yaml','w').write('model: {name: unimix_t, tokenizer: pointcloud, num_classes: 12, dim: 16, depth: 1, tokenizer_kwargs: {num_groups: 8, group_size: 8, hidden: 16}}\\ndata: {kind: shapes, num_per_class: 1, num_points: 64}\\ntrain: {epochs: 1, progress: false}\\n'); sys.exit(main(['train', T+'/c.yaml', '--set', 'train.epochs=abc']))", "cli"),
 "c_unknown_train_key": ("from unimix.cli import main; open(T+'/c.yaml','w').write('model: {name: unimix_t, tokenizer: pointcloud, num_classes: 12, dim: 16, depth: 1}\\ndata: {kind: shapes, num_per_class: 1, num_points: 64}\\ntrain: {epoch: 1}\\n'); sys.exit(main(['train', T+'/c.yaml']))", "cli"),
 "c_model_not_dict": ("from unimix.cli import main; open(T+'/c.yaml','w').write('model: 3\\n'); sys.exit(main(['train', T+'/c.yaml']))", "cli"),
 "c_num_per_class_abc": ("from unimix.cli import main; open(T+'/c.yaml','w').write('model: {name: unimix_t}\\ndata: {kind: shapes, num_per_class: abc}\\n'); sys.exit(main(['train', T+'/c.yaml']))", "cli"),
 "c_binary_cfg": ("from unimix.cli import main; open(T+'/c.yaml','wb').write(bytes(range(256))); sys.exit(main(['train', T+'/c.yaml']))", "cli"),
 "c_predict_missing": ("from unimix.cli import main; d=T+'/m'; pmodel().save_pretrained(d); sys.exit(main(['predict', d, T+'/none.ply']))", "cli"),
 "t_labels_oob": ("t=unimix.Trainer(pmodel(), epochs=1, progress=False, verbose=False); t.fit((torch.randn(4,64,3), torch.tensor([0,1,2,7])))", "error"),
 "t_labels_neg": ("t=unimix.Trainer(pmodel(), epochs=1, progress=False, verbose=False); t.fit((torch.randn(4,64,3), torch.tensor([0,1,2,-3])))", "error"),
 "t_labels_float": ("t=unimix.Trainer(pmodel(), epochs=1, progress=False, verbose=False); t.fit((torch.randn(4,64,3), torch.tensor([0.,1.,2.,0.5])))", "error"),
 "t_labels_oob_eval": ("t=unimix.Trainer(pmodel(), epochs=1, progress=False, verbose=False); t.evaluate((torch.randn(4,64,3), torch.tensor([0,1,2,7])))", "error"),
 "t_lr_huge": ("t=unimix.Trainer(pmodel(), epochs=3, lr=1e6, progress=False, verbose=False); t.fit((torch.randn(8,64,3)*10, torch.tensor([0,1,2,0,1,2,0,1])))", "error_or_ok"),
 "t_all_ignored": ("t=unimix.Trainer(pmodel(), epochs=1, progress=False, verbose=False); t.fit((torch.randn(4,64,3), torch.full((4,), -100)))", "error"),
 "t_nan_input": ("x=torch.randn(4,64,3); x[0,0,0]=float('nan'); t=unimix.Trainer(pmodel(), epochs=1, progress=False, verbose=False); t.fit((x, torch.tensor([0,1,2,0])))", "error"),
 "pred_mesh": ("from unimix.cli import main; d=T+'/m'; m=pmodel(); m(torch.randn(1,64,3)); m.set_preprocess(unimix.PointCloudPreprocess(64)); m.save_pretrained(d); open(T+'/a.off','w').write('OFF\\n4 4 0\\n0 0 0\\n1 0 0\\n0 1 0\\n0 0 1\\n3 0 1 2\\n3 0 1 3\\n3 0 2 3\\n3 1 2 3\\n'); r=main(['predict', d, T+'/a.off']); assert r==0", "ok"),
 "pred_mesh_obj": ("from unimix.cli import main; d=T+'/m'; m=pmodel(); m.set_preprocess(unimix.PointCloudPreprocess(64)); m.save_pretrained(d); open(T+'/a.obj','w').write('v 0 0 0\\nv 1 0 0\\nv 0 1 0\\nv 0 0 1\\nf 1 2 3\\nf 1 2 4\\nf 1 3 4\\nf 2 3 4\\n'); r=main(['predict', d, T+'/a.obj']); assert r==0", "ok"),
 "x_img_zero": ("m=imodel(); m(torch.randn(2,3,0,0))", "error"),
 "x_img_small": ("m=imodel(); m(torch.randn(2,3,4,4))", "error"),
 "x_img_3d": ("m=imodel()\ntry:\n    m(torch.randn(3,32,32))\nexcept ValueError as e:\n    assert 'unsqueeze' in str(e), e; raise", "error"),
 "x_img_numpy": ("m=imodel(); m(np.zeros((2,3,32,32), dtype=np.float32))", "error"),
 "x_pc_numpy": ("m=pmodel(); m(np.zeros((2,64,3), dtype=np.float32))", "error"),
 "x_pc_empty_batch": ("m=pmodel(); out=m(torch.randn(0,64,3)); assert out.shape==(0,3), out.shape", "error_or_ok"),
 "x_pc_dup_points": ("m=pmodel(short_clouds='error'); m(torch.zeros(2,64,3))", "error"),
 "x_pc_few_points": ("m=pmodel(short_clouds='error'); m(torch.randn(2,4,3))", "error"),
 "x_pc_dup_points_repeat": ("m=pmodel(); out=m(torch.zeros(2,64,3)); assert out.shape==(2,3) and torch.isfinite(out).all(), out", "ok"),
 "x_pc_few_points_repeat": ("m=pmodel(); out=m(torch.randn(2,4,3)); assert out.shape==(2,3) and torch.isfinite(out).all(), out", "ok"),
 "x_pc_list_mixed": ("m=pmodel(); out=m([torch.randn(40,3), torch.randn(50,3).double()]); assert out.shape==(2,3)", "ok"),
 "x_pc_list_empty": ("m=pmodel(); m([])", "error"),
 "x_pc_4d": ("m=pmodel(); m(torch.randn(2,2,64,3))", "error"),
 "x_pc_feats_rows": ("m=pmodel(in_chans=6); m(Data(pos=torch.randn(40,3), x=torch.randn(30,3)))", "error"),
 "x_pc_batch_ptr": ("m=pmodel(); b=Batch.from_data_list([Data(pos=torch.randn(20,3)), Data(pos=torch.randn(20,3))]); b.batch=torch.tensor([0]*20+[2]*20); m(b)", "error"),
 "x_g_x_rows": ("m=gmodel(); m(Data(x=torch.randn(6,4), edge_index=torch.tensor([[0,1],[1,2]]), num_nodes=5))", "error"),
 "x_g_no_x_hugeN": ("m=gmodel(); m(Data(edge_index=torch.tensor([[0,1],[1,2]]), num_nodes=10**12))", "error"),
 "x_g_list": ("m=gmodel(); m([ring(4), ring(5)])", "error"),
 "x_g_int32_ei": ("m=gmodel(); m(Data(x=torch.randn(5,4), edge_index=torch.tensor([[0,1],[1,2]], dtype=torch.int32)))", "error_or_ok"),
 "x_g_cross_edges": ("m=gmodel(); b=Batch.from_data_list([ring(4), ring(4)]); b.edge_index=torch.cat([b.edge_index, torch.tensor([[0],[5]])],1); m(b)", "error"),
 "x_g_node_index_oob": ("m=unimix.create_model('unimix_t', tokenizer='graph', task='segmentation', num_classes=3, dim=32, depth=1); g=ring(5); g.node_index=torch.tensor([0,9]); m(g)", "error"),
 "x_g_edge_attr_shape": ("m=gmodel(edge_dim=2); g=ring(4); g.edge_attr=torch.randn(3,2); m(g)", "error"),
 "x_g_edge_attr_missing": ("m=gmodel(edge_dim=2); m(ring(4))", "error"),
 "x_g_str_x": ("m=gmodel(); g=ring(4); g.x=torch.randn(4,4).to(torch.complex64); m(g)", "error"),
 "x_g_hops_wrongK": ("m=unimix.create_model('unimix_t', tokenizer='graph', task='segmentation', num_classes=3, dim=32, depth=1); m(torch.randn(4,2,5))", "error"),
 "x_g_edge_only_batch": ("m=gmodel(); out=m(Batch.from_data_list([Data(x=torch.randn(3,4), edge_index=torch.empty(2,0,dtype=torch.long)), ring(4)])); assert out.shape==(2,3)", "ok"),
 "b_unknown_kw": ("unimix.create_model('unimix_t', tokenizer='image', num_classes=3, dim=32, depth=1, foo=3)", "error"),
 "b_unknown_tok_kw": ("unimix.create_model('unimix_t', tokenizer='image', num_classes=3, dim=32, depth=1, tokenizer_kwargs=dict(foo=3))", "error"),
 "b_heads_indivisible": ("unimix.create_model('unimix_t', tokenizer='image', num_classes=3, dim=30, depth=1, num_heads=4, tokenizer_kwargs=dict(img_size=32, patch_size=8))", "error_or_ok"),
 "b_weight_init": ("unimix.create_model('unimix_t', tokenizer='image', num_classes=3, dim=32, depth=1, weight_init='nope')", "error"),
 "b_pool": ("unimix.create_model('unimix_t', tokenizer='image', num_classes=3, dim=32, depth=1, pool='nope')", "error"),
 "b_block": ("unimix.create_model('unimix_t', tokenizer='image', num_classes=3, dim=32, depth=1, block='nope')", "error"),
 "b_tokenizer": ("unimix.create_model('unimix_t', tokenizer='nope', num_classes=3, dim=32, depth=1)", "error"),
 "b_drop_path": ("unimix.create_model('unimix_t', tokenizer='image', num_classes=3, dim=32, depth=1, drop_path_rate=1.5)", "error"),
 "b_img_size0": ("unimix.create_model('unimix_t', tokenizer='image', num_classes=3, dim=32, depth=1, tokenizer_kwargs=dict(img_size=0, patch_size=8))", "error"),
 "b_huge_img": ("unimix.create_model('unimix_t', tokenizer='image', num_classes=3, dim=4096, depth=1, tokenizer_kwargs=dict(img_size=2**20, patch_size=1))", "error"),
 "b_huge_mem": ("unimix.create_model('unimix_t', tokenizer='image', num_classes=3, dim=65536, depth=1)", "error"),
 "b_num_classes_float": ("unimix.create_model('unimix_t', tokenizer='image', num_classes=3.0, dim=32, depth=1)", "error"),
 "b_reset_neg": ("m=imodel(); m.reset_classifier(-2)", "error"),
 "b_pretrained_num_classes_neg": ("d=T+'/m'; imodel().save_pretrained(d); unimix.from_pretrained(d, num_classes=-1)", "error"),
 "f_obj_bad_face": ("open(T+'/a.obj','w').write('v 0 0 0\\nv 1 0 0\\nf 1 2 9\\n'); unimix.read_point_cloud(T+'/a.obj')", "error"),
 "f_stl_trunc": ("import struct; open(T+'/a.stl','wb').write(b'\\0'*80 + struct.pack('<I', 1000000) + b'\\0'*100); unimix.read_point_cloud(T+'/a.stl')", "error"),
 "f_off_neg": ("open(T+'/a.off','w').write('OFF\\n-3 1 0\\n'); unimix.read_point_cloud(T+'/a.off')", "error"),
 "f_off_huge": ("open(T+'/a.off','w').write('OFF\\n1000000000 1000000000 0\\n0 0 0\\n'); unimix.read_point_cloud(T+'/a.off')", "error"),
 "f_txt_header": ("open(T+'/a.txt','w').write('x y z\\n1 2 3\\n'); unimix.read_point_cloud(T+'/a.txt')", "error"),
 "f_pcd_bin_trunc": ("open(T+'/a.pcd','wb').write(b'VERSION 0.7\\nFIELDS x y z\\nSIZE 4 4 4\\nTYPE F F F\\nCOUNT 1 1 1\\nWIDTH 1000\\nHEIGHT 1\\nPOINTS 1000\\nDATA binary\\n' + b'\\0'*120); unimix.read_point_cloud(T+'/a.pcd')", "error"),
 "f_pcd_compressed_lie": ("import struct; open(T+'/a.pcd','wb').write(b'VERSION 0.7\\nFIELDS x y z\\nSIZE 4 4 4\\nTYPE F F F\\nCOUNT 1 1 1\\nWIDTH 50000000\\nHEIGHT 1\\nPOINTS 50000000\\nDATA binary_compressed\\n' + struct.pack('<II', 10, 600000000) + b'\\0'*10); unimix.read_point_cloud(T+'/a.pcd')", "error"),
 "f_pcd_ok": ("import open3d as o3d; p=o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.random.rand(50,3))); o3d.io.write_point_cloud(T+'/a.pcd', p); o3d.io.write_point_cloud(T+'/b.pcd', p, write_ascii=True); o3d.io.write_point_cloud(T+'/c.pcd', p, compressed=True)\nfor n in 'abc': assert unimix.read_point_cloud(T+f'/{n}.pcd').shape == (50,3)", "ok"),
 "f_ply_mesh_ok": ("import open3d as o3d; m=o3d.geometry.TriangleMesh.create_box(); o3d.io.write_triangle_mesh(T+'/a.ply', m); o3d.io.write_triangle_mesh(T+'/b.ply', m, write_ascii=True)\nfor n in 'ab': assert unimix.read_point_cloud(T+f'/{n}.ply').shape == (8,3)", "ok"),
 "f_img_fifo": ("os.mkfifo(T+'/a.png'); unimix.io.ImagePreprocess((32,32)).read(T+'/a.png')", "error"),
 "f_img_trunc": ("from PIL import Image; Image.new('RGB',(40,40)).save(T+'/a.png'); b=open(T+'/a.png','rb').read(); open(T+'/a.png','wb').write(b[:50]); unimix.io.ImagePreprocess((32,32)).read(T+'/a.png')", "error"),
 "f_ckpt_dir": ("from unimix.train import load_checkpoint; os.mkdir(T+'/c.safetensors'); load_checkpoint(T+'/c.safetensors')", "error"),
 "f_ckpt_wrong_opt": ("from unimix.train import save_checkpoint, load_checkpoint; m=imodel(); o=torch.optim.AdamW(m.parameters()); m(torch.randn(1,3,32,32)).sum().backward(); o.step(); save_checkpoint(T+'/c.safetensors', m, o); m2=imodel(); o2=torch.optim.AdamW([next(m2.parameters())]); load_checkpoint(T+'/c.safetensors', m2, o2)", "error"),
 "f_st_bad_dtype": ("import json, struct; h=json.dumps({'a': {'dtype':'F99','shape':[2],'data_offsets':[0,8]}}).encode(); open(T+'/m.safetensors','wb').write(struct.pack('<Q', len(h)) + h + b'\\0'*8); from unimix.serialization import read_safetensors; read_safetensors(T+'/m.safetensors')", "error"),
 "f_st_header_notjson": ("import struct; h=b'{not json}'; open(T+'/m.safetensors','wb').write(struct.pack('<Q', len(h)) + h); from unimix.serialization import read_safetensors; read_safetensors(T+'/m.safetensors')", "error"),
 "f_cfg_meta_bad": ("from safetensors.torch import save_file; os.mkdir(T+'/m'); save_file({'a': torch.zeros(1)}, T+'/m/model.safetensors', metadata={'unimix_config': '{bad'}); unimix.from_pretrained(T+'/m')", "error"),
 "f_cfg_no_model_name": ("import json; from safetensors.torch import save_file; os.mkdir(T+'/m'); save_file({'a': torch.zeros(1)}, T+'/m/model.safetensors', metadata={'unimix_config': json.dumps({'model': {'dim': 3}})}); unimix.from_pretrained(T+'/m')", "error"),
 "f_cfg_bad_kw": ("import json; from safetensors.torch import save_file; os.mkdir(T+'/m'); save_file({'a': torch.zeros(1)}, T+'/m/model.safetensors', metadata={'unimix_config': json.dumps({'model': {'model_name': 'unimix_t', 'dim': 32, 'depth': 1, 'tokenizer': 'image', 'bogus': 1}})}); unimix.from_pretrained(T+'/m')", "error"),
 "f_pretrained_file": ("open(T+'/x','w').write('x'); unimix.from_pretrained(T+'/x')", "error"),
 "f_symlink_dev": ("d=T+'/m'; imodel().save_pretrained(d); os.unlink(d+'/model.safetensors'); os.symlink('/dev/zero', d+'/model.safetensors'); unimix.from_pretrained(d)", "error"),
 "c_set_no_eq": ("from unimix.cli import main; open(T+'/c.yaml','w').write('model: {name: unimix_t}\\n'); sys.exit(main(['train', T+'/c.yaml', '--set', 'seed']))", "cli"),
 "c_set_bad_yaml": ("from unimix.cli import main; open(T+'/c.yaml','w').write('model: {name: unimix_t}\\n'); sys.exit(main(['train', T+'/c.yaml', '--set', 'train.epochs=[1']))", "cli"),
 "c_model_dim_abc": ("from unimix.cli import main; open(T+'/c.yaml','w').write('model: {name: unimix_t, tokenizer: pointcloud, num_classes: 12, dim: abc}\\ndata: {kind: shapes, num_per_class: 1, num_points: 64}\\n'); sys.exit(main(['train', T+'/c.yaml']))", "cli"),
 "c_lr_abc": ("from unimix.cli import main; open(T+'/c.yaml','w').write('model: {name: unimix_t, tokenizer: pointcloud, num_classes: 12, dim: 16, depth: 1}\\ndata: {kind: shapes, num_per_class: 1, num_points: 64}\\ntrain: {lr: abc}\\n'); sys.exit(main(['train', T+'/c.yaml']))", "cli"),
 "c_empty_cfg": ("from unimix.cli import main; open(T+'/c.yaml','w').write(''); sys.exit(main(['train', T+'/c.yaml']))", "cli"),
 "c_missing_cfg": ("from unimix.cli import main; sys.exit(main(['train', T+'/nope.yaml']))", "cli"),
 "c_data_kind": ("from unimix.cli import main; open(T+'/c.yaml','w').write('model: {name: unimix_t}\\ndata: {kind: shape}\\n'); sys.exit(main(['train', T+'/c.yaml']))", "cli"),
 "c_data_unknown": ("from unimix.cli import main; open(T+'/c.yaml','w').write('model: {name: unimix_t, tokenizer: pointcloud, num_classes: 12, dim: 16, depth: 1}\\ndata: {kind: shapes, bogus: 1}\\n'); sys.exit(main(['train', T+'/c.yaml']))", "cli"),
 "c_predict_wrong_ext": ("from unimix.cli import main; d=T+'/m'; pmodel().save_pretrained(d); open(T+'/a.png','wb').write(b'x'); sys.exit(main(['predict', d, T+'/a.png']))", "cli"),
 "c_predict_no_model": ("from unimix.cli import main; sys.exit(main(['predict', T+'/none', T+'/a.ply']))", "cli"),
 "c_eval_no_model": ("from unimix.cli import main; open(T+'/c.yaml','w').write('model: {name: unimix_t}\\n'); sys.exit(main(['eval', T+'/c.yaml']))", "cli"),
 "t_soft_wrong_C": ("t=unimix.Trainer(pmodel(), epochs=1, progress=False, verbose=False); t.fit((torch.randn(4,64,3), torch.rand(4,5)))", "error"),
 "t_nan_label": ("t=unimix.Trainer(pmodel(), epochs=1, progress=False, verbose=False); t.fit((torch.randn(4,64,3), torch.tensor([0.,1.,float('nan'),0.])))", "error"),
 "t_len_mismatch": ("t=unimix.Trainer(pmodel(), epochs=1, progress=False, verbose=False); t.fit((torch.randn(4,64,3), torch.tensor([0,1,2])))", "error"),
 "t_resume_dir": ("t=unimix.Trainer(pmodel(), epochs=1, progress=False, verbose=False, resume=T); t.fit((torch.randn(4,64,3), torch.tensor([0,1,2,0])))", "error"),
 "t_resume_other_model": ("from unimix.train import save_checkpoint; save_checkpoint(T+'/c.safetensors', imodel()); t=unimix.Trainer(pmodel(), epochs=1, progress=False, verbose=False, resume=T+'/c.safetensors'); t.fit((torch.randn(4,64,3), torch.tensor([0,1,2,0])))", "error"),
 "t_seg_labels_oob": ("m=unimix.create_model('unimix_t', tokenizer='pointcloud', task='segmentation', num_classes=3, dim=32, depth=1, tokenizer_kwargs=dict(num_groups=8, group_size=8)); t=unimix.Trainer(m, epochs=1, progress=False, verbose=False); t.fit((torch.randn(2,64,3), torch.full((2,64), 5)))", "error"),
 "t_seg_labels_shape": ("m=unimix.create_model('unimix_t', tokenizer='pointcloud', task='segmentation', num_classes=3, dim=32, depth=1, tokenizer_kwargs=dict(num_groups=8, group_size=8)); t=unimix.Trainer(m, epochs=1, progress=False, verbose=False); t.fit((torch.randn(2,64,3), torch.zeros(2,60, dtype=torch.long)))", "error"),
 "t_graph_labels_oob": ("t=unimix.Trainer(gmodel(), epochs=1, progress=False, verbose=False); gs=[ring(4) for _ in range(4)]\nfor i,g in enumerate(gs): g.y=torch.tensor([i])\nt.fit(gs)", "error"),
 "t_graph_no_y": ("t=unimix.Trainer(gmodel(), epochs=1, progress=False, verbose=False); t.fit([ring(4) for _ in range(4)])", "error"),
 "y_tok_kwargs_int": ("unimix.create_model('unimix_t', tokenizer='image', num_classes=3, dim=32, depth=1, tokenizer_kwargs=3)", "error"),
 "y_backbone_dim0": ("unimix.Backbone('image', dim=0)", "error"),
 "y_infer_5d": ("b=unimix.Backbone(['image','pointcloud'], dim=32, depth=1, tokenizer_kwargs={'image': dict(img_size=32, patch_size=8), 'pointcloud': dict(num_groups=8, group_size=8)}); b(torch.randn(1,2,3,4,5))", "error"),
 "y_multi_pc_nan": ("b=unimix.Backbone(['image','pointcloud'], dim=32, depth=1, tokenizer_kwargs={'image': dict(img_size=32, patch_size=8), 'pointcloud': dict(num_groups=8, group_size=8)}); x=torch.randn(1,64,3); x[0,0,0]=float('nan'); b(x)", "error"),
 "y_nodesplit": ("from unimix.data import NodeSplit; NodeSplit('nope')(ring(4))", "error"),
 "y_preprocess_img0": ("from PIL import Image; Image.new('RGB',(40,40)).save(T+'/a.png'); unimix.io.ImagePreprocess(img_size=0).read(T+'/a.png')", "error"),
 "y_preprocess_std0": ("from PIL import Image; Image.new('RGB',(32,32)).save(T+'/a.png'); m=imodel(); x=unimix.io.ImagePreprocess(img_size=32, std=(0,0,0)).read(T+'/a.png'); m(x.unsqueeze(0))", "error"),
 "y_shapes_neg": ("from unimix.data import ShapesDataset; ShapesDataset(-1)", "error"),
 "y_gen_shapes_0": ("from unimix.data import generate_shapes; generate_shapes(num_per_class=1, num_points=0)", "error"),
 "y_cross_validate_1": ("gs=[ring(4) for _ in range(4)]\nfor i, g in enumerate(gs): g.y = torch.tensor([i % 2])\nunimix.cross_validate(lambda: gmodel(), gs, folds=1)", "error"),
 "y_cross_validate_noy": ("unimix.cross_validate(lambda: gmodel(), [ring(4) for _ in range(4)], folds=2)", "error"),
 "y_predict_tensor_wrong": ("m=pmodel(); m.predict(torch.randn(2,3,64))", "error"),
 "y_predict_dir": ("m=pmodel(); os.mkdir(T+'/d.ply'); m.predict(T+'/d.ply')", "error"),
 "y_resample_neg": ("unimix.io.resample_points(torch.randn(10,3), -1)", "error"),
 "y_normalize_bad_mode": ("unimix.io.normalize_points(torch.randn(10,3), 'nope')", "error"),
 "y_hop_features_bad": ("from unimix.tokenizers.graph import hop_features; hop_features(torch.randn(5,3), torch.tensor([[0,7],[1,2]]), 2)", "error"),
 "y_addhops_bad": ("from unimix.tokenizers.graph import AddHopFeatures; AddHopFeatures(2)(Data(x=torch.randn(5,3), edge_index=torch.tensor([[0,-1],[1,2]])))", "error"),
 "y_fps_direct_nan": ("from unimix.ops.grouping import farthest_point_sample; x=torch.randn(1,32,3); x[0,3,1]=float('nan'); farthest_point_sample(x, 8)", "error"),
 "y_knn_direct_huge": ("from unimix.ops.grouping import knn; x=torch.rand(1,64,3,dtype=torch.float64)*1e300; knn(x[:,:8], x, 8)", "error"),
 "y_multitask_bad": ("unimix.MultiTaskModel.create({'a': dict(modality='pointcloud', num_classes=-1)}, dim=32, depth=1)", "error"),
 "y_multitask_modality": ("unimix.MultiTaskModel.create({'a': dict(modality='pointclod', num_classes=3)}, dim=32, depth=1)", "error"),
 "p_folder_missing": ("from unimix.data import PointCloudFolder; PointCloudFolder(T+'/none')", "error"),
 "p_folder_empty": ("from unimix.data import PointCloudFolder; PointCloudFolder(T)", "error"),
 "p_folder_nan": ("from unimix.data import PointCloudFolder; os.makedirs(T+'/r/a'); open(T+'/r/a/x.xyz','w').write('1 2 3\\nnan 0 0\\n'); PointCloudFolder(T+'/r', split='all')", "error"),
 "p_folder_fifo": ("from unimix.data import PointCloudFolder; os.makedirs(T+'/r/a'); os.mkfifo(T+'/r/a/x.xyz'); PointCloudFolder(T+'/r', split='all')", "error"),
 "p_folder_split_missing": ("from unimix.data import PointCloudFolder; os.makedirs(T+'/r/a'); np.savetxt(T+'/r/a/x.xyz', np.random.rand(20,3)); open(T+'/r/train.txt','w').write('a/y.xyz\\n'); open(T+'/r/test.txt','w').write('a/x.xyz\\n'); PointCloudFolder(T+'/r')", "error"),
 "p_folder_file_root": ("from unimix.data import load_point_clouds; open(T+'/a.xyz','w').write('1 2 3\\n'); load_point_clouds(T+'/a.xyz')", "error"),
 "p_clouds_1e39": ("from unimix.data import PointClouds; PointClouds([np.full((20,3), 1e39)], [0], ['a'], unimix.PointCloudPreprocess(16))", "error"),
 "p_clouds_nan": ("from unimix.data import PointClouds; c=np.random.rand(20,3); c[3,1]=np.nan; PointClouds([c], [0], ['a'], unimix.PointCloudPreprocess(16))", "error"),
 "p_clouds_shape": ("from unimix.data import PointClouds; PointClouds([np.random.rand(3,20)], [0], ['a'], unimix.PointCloudPreprocess(16))", "error"),
 "p_clouds_empty": ("from unimix.data import PointClouds; PointClouds([np.zeros((0,3))], [0], ['a'], unimix.PointCloudPreprocess(16))", "error"),
 "p_clouds_label_oob": ("from unimix.data import PointClouds; PointClouds([np.random.rand(20,3)], [4], ['a'], unimix.PointCloudPreprocess(16))", "error"),
 "p_preprocess_1e39": ("unimix.PointCloudPreprocess(16)(torch.full((20,3), 1e39, dtype=torch.float64))", "error"),
 "p_preprocess_transposed": ("unimix.PointCloudPreprocess(16)(torch.randn(3,1024))", "error"),
 "p_preprocess_no_normals": ("unimix.PointCloudPreprocess(16, normals=True)(torch.randn(100,3))", "error"),
 "p_preprocess_list": ("unimix.PointCloudPreprocess(16)([[0,0,0]]*20)", "error"),
 "p_corrupt_name": ("from unimix.data.corruptions import corrupt; corrupt(torch.randn(64,3), 'jiter', 0)", "error"),
 "p_corrupt_level": ("from unimix.data.corruptions import corrupt; corrupt(torch.randn(64,3), 'jitter', 5)", "error"),
 "p_corrupt_nan": ("from unimix.data.corruptions import corrupt; x=torch.randn(64,3); x[0,0]=float('nan'); corrupt(x, 'jitter', 0)", "error"),
 "p_normalize_log_nan": ("x=torch.randn(64,3); x[0,0]=float('nan'); m=pmodel(); m(unimix.io.normalize_points(x, 'unit_sphere_log_extent')[:, :3].unsqueeze(0))", "error"),
 "t_pretrain_mask": ("unimix.pretrain(pmodel(), torch.randn(4,64,3), epochs=1, mask_ratio=1.5, progress=False, verbose=False)", "error"),
 "t_pretrain_nan": ("x=torch.randn(4,64,3); x[1,2,0]=float('nan'); unimix.pretrain(pmodel(), (x, torch.zeros(4, dtype=torch.long)), epochs=1, progress=False, verbose=False)", "error"),
 "t_joint_temperature": ("mt=unimix.MultiTaskModel.create({'a': dict(modality='pointcloud', num_classes=3, tokenizer_kwargs=dict(num_groups=8, group_size=8))}, dim=32, depth=1); from unimix.train import JointTrainer; JointTrainer(mt, temperature=float('nan'))", "error"),
 "c_pretrain_bad": ("from unimix.cli import main; open(T+'/c.yaml','w').write('model: {name: unimix_t, tokenizer: pointcloud, num_classes: 12, dim: 16, depth: 1, tokenizer_kwargs: {num_groups: 8, group_size: 8, hidden: 16}}\\ndata: {kind: shapes, num_per_class: 1, num_points: 64}\\ntrain: {epochs: 1, progress: false, mask_ratio: 2}\\n'); sys.exit(main(['pretrain', T+'/c.yaml']))", "cli"),
 "c_train_seed_in_train": ("from unimix.cli import main; open(T+'/c.yaml','w').write('model: {name: unimix_t, tokenizer: pointcloud, num_classes: 12, dim: 16, depth: 1}\\ndata: {kind: shapes, num_per_class: 1, num_points: 64}\\ntrain: {seed: 1}\\n'); sys.exit(main(['train', T+'/c.yaml']))", "cli"),
 "t_soft_wrong_C_msg": ("t=unimix.Trainer(pmodel(), epochs=1, progress=False, verbose=False)\ntry:\n    t.fit((torch.randn(4,64,3), torch.rand(4,5)))\nexcept ValueError as e:\n    assert '5 classes' in str(e), e; raise", "error"),
 "c_pretrain_unknown": ("from unimix.cli import main; open(T+'/c.yaml','w').write('model: {name: unimix_t, tokenizer: pointcloud, num_classes: 12, dim: 16, depth: 1}\\ndata: {kind: shapes, num_per_class: 1, num_points: 64}\\ntrain: {epoch: 1}\\n'); sys.exit(main(['pretrain', T+'/c.yaml']))", "cli"),
 "y_trainer_clip": ("unimix.Trainer(pmodel(), clip_grad=-1)", "error"),
 "y_trainer_wd": ("unimix.Trainer(pmodel(), weight_decay='x')", "error"),
 "y_trainer_ls": ("unimix.Trainer(pmodel(), label_smoothing=1.5)", "error"),
 "y_trainer_monitor": ("t=unimix.Trainer(pmodel(), epochs=1, progress=False, verbose=False, monitor='nope'); t.fit((torch.randn(4,64,3), torch.tensor([0,1,2,0])))", "error"),
 "y_seg_custom_loss_oob": ("m=unimix.create_model('unimix_t', tokenizer='pointcloud', task='segmentation', num_classes=3, dim=32, depth=1, tokenizer_kwargs=dict(num_groups=8, group_size=8)); t=unimix.Trainer(m, epochs=1, progress=False, verbose=False, loss_fn=lambda o,t,b: o.float().mean()); t.fit((torch.randn(2,64,3), torch.full((2,64), 5)))", "error"),
 "f_nan_weights_load": ("import json; from safetensors.torch import load_file, save_file; from safetensors import safe_open; d=T+'/m'; imodel().save_pretrained(d)\nwith safe_open(d+'/model.safetensors', 'pt') as f: meta=f.metadata()\nsd=load_file(d+'/model.safetensors'); sd['head.fc.weight'][0,0]=float('nan'); save_file(sd, d+'/model.safetensors', metadata=meta); unimix.from_pretrained(d)", "error"),
 "f_weights_missing": ("d=T+'/m'; imodel().save_pretrained(d); os.unlink(d+'/model.safetensors'); unimix.from_pretrained(d)", "error"),
 "f_save_onto_file": ("open(T+'/m','w').write('x'); imodel().save_pretrained(T+'/m')", "error"),
 "f_ckpt_missing": ("from unimix.train import load_checkpoint; load_checkpoint(T+'/none.safetensors', imodel())", "error"),
 "f_ckpt_pickle": ("import pickle; from unimix.train import load_checkpoint; open(T+'/c.pt','wb').write(pickle.dumps({'a': 1})); load_checkpoint(T+'/c.pt', imodel())", "error"),
 "y_hub_offline": ("unimix.from_pretrained('nobody-here/nothing-here')", "error"),
 "y_pretrained_num_classes_str": ("d=T+'/m'; imodel().save_pretrained(d); unimix.from_pretrained(d, num_classes='3')", "error"),
 "i_gray": ("m=imodel(); m(torch.randn(2,1,32,32))", "error"),
 "i_inf": ("m=imodel(); x=torch.randn(2,3,32,32); x[1,2,3,4]=float('inf'); m(x)", "error"),
 "i_huge": ("m=imodel(); m(torch.randn(2,3,32,32)*1e30)", "error"),
 "i_wrong_size": ("m=imodel(); m(torch.randn(2,3,48,48))", "error_or_ok"),
 "i_list": ("m=imodel(); m([torch.randn(3,32,32), torch.randn(3,32,32)])", "error"),
 "p_6ch_into_3": ("m=pmodel(); out=m(torch.randn(2,64,6))", "error"),
 "p_batch_pos_f64": ("m=pmodel(); b=Batch.from_data_list([Data(pos=torch.randn(20,3).double()), Data(pos=torch.randn(20,3).double())]); out=m(b); assert out.shape==(2,3)", "ok"),
 "p_batch_no_pos": ("m=pmodel(); m(Batch.from_data_list([Data(x=torch.randn(20,3)), Data(x=torch.randn(20,3))]))", "error"),
 "x_g_int_x": ("m=gmodel(); g=ring(4); g.x=torch.randint(0,3,(4,4)); out=m(g); assert out.shape==(1,3)", "error_or_ok"),
 "x_g_wrong_feat_dim": ("m=gmodel(); m(ring(4)); m(ring(4, f=7))", "error"),
 "x_g_no_x": ("m=gmodel(); m(Data(edge_index=torch.tensor([[0,1],[1,2]]), num_nodes=3))", "error_or_ok"),
 "x_g_self_loops_dup": ("m=gmodel(); g=ring(4); g.edge_index=torch.cat([g.edge_index, g.edge_index, torch.tensor([[0,1],[0,1]])],1); out=m(g); assert torch.isfinite(out).all()", "ok"),
 "t_batch_size0": ("unimix.Trainer(pmodel(), batch_size=0)", "error"),
 "t_epochs_neg": ("unimix.Trainer(pmodel(), epochs=-1)", "error"),
 "t_lr_nan": ("unimix.Trainer(pmodel(), lr=float('nan'))", "error"),
 "t_lr_neg": ("unimix.Trainer(pmodel(), lr=-1e-3)", "error"),
 "t_budget_neg": ("unimix.Trainer(pmodel(), time_budget_s=-5)", "error"),
 "t_empty_data": ("t=unimix.Trainer(pmodel(), epochs=1, progress=False, verbose=False); t.fit((torch.randn(0,64,3), torch.zeros(0, dtype=torch.long)))", "error"),
 "t_empty_list": ("t=unimix.Trainer(gmodel(), epochs=1, progress=False, verbose=False); t.fit([])", "error"),
 "t_strategy": ("unimix.finetune(pmodel(), (torch.randn(4,64,3), torch.tensor([0,1,2,0])), strategy='lora2', epochs=1, progress=False, verbose=False)", "error"),
 "y_cv_folds_gt_n": ("gs=[ring(4) for _ in range(4)]\nfor i, g in enumerate(gs): g.y = torch.tensor([i % 2])\nunimix.cross_validate(lambda: gmodel(), gs, folds=10, epochs=1, progress=False, verbose=False)", "error"),
 "y_predict_missing": ("pmodel().predict(T+'/none.ply')", "error"),
 "t_output_dir_file": ("open(T+'/r','w').write('x'); t=unimix.Trainer(pmodel(), epochs=1, progress=False, verbose=False, output_dir=T+'/r'); t.fit((torch.randn(4,64,3), torch.tensor([0,1,2,0])))", "error"),
 "t_resume_truncated": ("from unimix.train import save_checkpoint; m=pmodel(); save_checkpoint(T+'/c.safetensors', m); b=open(T+'/c.safetensors','rb').read(); open(T+'/c.safetensors','wb').write(b[:len(b)//3]); t=unimix.Trainer(pmodel(), epochs=1, progress=False, verbose=False, resume=T+'/c.safetensors'); t.fit((torch.randn(4,64,3), torch.tensor([0,1,2,0])))", "error"),
 "x_g_ei_2pow62": ("m=gmodel(); m(Data(x=torch.randn(5,4), edge_index=torch.tensor([[0,2**62],[1,2]])))", "error"),
 "x_g_int_edge_attr": ("m=gmodel(edge_dim=2); g=ring(4); g.edge_attr=torch.randint(0,3,(8,2)); out=m(g); assert torch.isfinite(out).all()", "error_or_ok"),
 "x_g_batch_len": ("m=gmodel(); g=ring(6); g.batch=torch.tensor([0,0,0,1,1]); m(g)", "error"),
 "i_folder_empty": ("from unimix.data import ImageFolder; ImageFolder(T)", "error"),
 "p_seg_labels_per_point_mismatch": ("m=unimix.create_model('unimix_t', tokenizer='pointcloud', task='segmentation', num_classes=3, dim=32, depth=1, tokenizer_kwargs=dict(num_groups=8, group_size=8)); t=unimix.Trainer(m, epochs=1, progress=False, verbose=False); t.fit((torch.randn(2,64,3), torch.zeros(2,64,2, dtype=torch.long)))", "error"),
 "l_extra_model": ("d=T+'/m'; imodel().save_pretrained(d)\ntry:\n    imodel().save_pretrained(d, extra={'model': 'v2'})\nexcept ValueError: pass\nassert unimix.from_pretrained(d).num_classes == 3", "keeps"),
 "l_trainer_extra": ("d=T+'/r'; t=unimix.Trainer(pmodel(), epochs=1, progress=False, verbose=False, output_dir=d); t.fit((torch.randn(4,64,3), torch.tensor([0,1,2,0])), (torch.randn(4,64,3), torch.tensor([0,1,2,0])))\ntry:\n    unimix.Trainer(pmodel(), epochs=1, progress=False, verbose=False, output_dir=d, save_extra={'model': 'x'}).fit((torch.randn(4,64,3), torch.tensor([0,1,2,0])), (torch.randn(4,64,3), torch.tensor([0,1,2,0])))\nexcept ValueError: pass\nunimix.from_pretrained(d+'/best')", "keeps"),
 "l_nan_over_good": ("d=T+'/m'; imodel().save_pretrained(d); m=imodel(); m.head.fc.weight.data[0,0]=float('nan')\ntry:\n    m.save_pretrained(d)\nexcept ValueError: pass\nassert torch.isfinite(unimix.from_pretrained(d).head.fc.weight).all()", "keeps"),
 "l_ckpt_nan_over_good": ("from unimix.train import save_checkpoint, load_checkpoint; p=T+'/last.safetensors'; save_checkpoint(p, imodel(), epoch=1); m=imodel(); m.head.fc.weight.data[0,0]=float('inf')\ntry:\n    save_checkpoint(p, m, epoch=2)\nexcept (ValueError, FloatingPointError): pass\nassert load_checkpoint(p, imodel())['epoch'] == 1", "keeps"),
 "l_full_disk": ("import unimix.serialization as S; d=T+'/m'; imodel().save_pretrained(d); real=S.os.fsync\ndef full(fd): raise OSError(28, 'No space left on device')\nS.os.fsync=full\ntry:\n    unimix.create_model('unimix_t', tokenizer='image', num_classes=5, dim=32, depth=1, tokenizer_kwargs=dict(img_size=32, patch_size=8)).save_pretrained(d)\nexcept OSError: pass\nS.os.fsync=real; assert unimix.from_pretrained(d).num_classes == 3 and sorted(os.listdir(d)) == ['config.json', 'model.safetensors'], os.listdir(d)", "keeps"),
 "l_kill_pretrained": ("import random, signal, time\nd=T+'/m'; ms={c: unimix.create_model('unimix_t', tokenizer='image', num_classes=c, dim=32, depth=1, tokenizer_kwargs=dict(img_size=32, patch_size=8)) for c in (3, 5)}; ms[3].save_pretrained(d, extra={'k': 0}); rng=random.Random(0)\nfor r in range(12):\n    pid=os.fork()\n    if pid == 0:\n        k=(r+1)*1000\n        while True:\n            m=ms[3 + 2*(k % 2)]; m.head.fc.bias.data.fill_(k); m.save_pretrained(d, extra={'k': k}); k+=1\n    time.sleep(rng.uniform(0, 0.15)); os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0)\n    with warnings.catch_warnings():\n        warnings.simplefilter('ignore'); m=unimix.from_pretrained(d)\n    k=m.pretrained_info['k']; assert m.num_classes == (3 if k % 2 == 0 else 5) and bool((m.head.fc.bias == k).all()), (r, k)", "keeps"),
 "extra_model": ("m=imodel(); m.save_pretrained(T+'/m', extra={'model':'v2'})", "error"),
 "extra_save_id": ("m=imodel(); m.save_pretrained(T+'/m', extra={'save_id':'v2'})", "error"),
 "extra_trainer": ("t=unimix.Trainer(pmodel(), epochs=1, progress=False, verbose=False, output_dir=T+'/r', save_extra={'model':'x'}); t.fit((torch.randn(4,64,3), torch.tensor([0,1,2,0])), (torch.randn(4,64,3), torch.tensor([0,1,2,0])))\nunimix.from_pretrained(T+'/r/best')", "error"),
}


TIMEOUT = 60
GOOD = ("ok", "clear")


def run_case(code: str, base: dict) -> tuple[int | None, str]:
    """Fork; the child runs ``code`` under a memory cap and reports its output through a pipe."""
    r, w = os.pipe()
    tmp = tempfile.mkdtemp(prefix="hostile-")
    pid = os.fork()
    if pid == 0:
        os.close(r)
        out, rc = io.StringIO(), 0
        try:
            resource.setrlimit(resource.RLIMIT_AS, (12 << 30, 12 << 30))
            os.environ["PROBE_TMP"] = tmp
            g = dict(base, T=tmp)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                exec(code, g)
        except SystemExit as e:
            rc = 100 + int(e.code or 0)
        except BaseException:
            out.write(traceback.format_exc())
            rc = 1
        os.write(w, out.getvalue().encode()[-4000:])
        os._exit(rc)
    os.close(w)
    start = time.time()
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.time() - start > TIMEOUT:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            os.close(r)
            return None, ""
        time.sleep(0.02)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status), data.decode(errors="replace")
    return os.WEXITSTATUS(status), data.decode(errors="replace")


def message_lines(out: str) -> list[str]:
    return [ln for ln in out.strip().splitlines() if ln.strip() and not ln.strip().startswith("warnings.warn")]


def classify(rc: int | None, out: str, expect: str) -> str:
    if rc is None:
        return "HANG"
    if rc < 0:
        return "CRASH"
    lines = message_lines(out)
    errors = [ln for ln in lines if re.match(r"^[A-Za-z_.]*(Error|Exception)\b", ln)]  # a multi-line message's first line
    last = errors[-1] if errors else (lines[-1] if lines else "")
    if expect == "keeps":
        return "ok" if rc in (0, 100) else "LOSS"
    if expect == "cli":
        return "clear" if rc == 102 and "Traceback" not in out else "UNCLEAR"
    if rc in (0, 100):
        return "ok" if expect in ("ok", "error_or_ok") else "SILENT"
    if "AssertionError" in out:
        return "SILENT"
    return "clear" if last.startswith(("ValueError", "TypeError", "FileNotFoundError", "FloatingPointError")) else "UNCLEAR"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cases", nargs="*", help="case names (default: all)")
    ap.add_argument("--json", action="store_true", help="last line: one JSON object")
    args = ap.parse_args(argv)
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        ap.error(f"unknown cases {unknown}")
    os.environ.setdefault("PROBE_TMP", tempfile.gettempdir())
    base: dict = {}
    exec(PRE, base)
    results = {}
    for name in args.cases or list(CASES):
        code, expect = CASES[name]
        start = time.time()
        rc, out = run_case(code, base)
        results[name] = classify(rc, out, expect)
        lines = message_lines(out)
        print(f"{name:28s} {results[name]:8s} {time.time() - start:5.1f}s  {(lines[-1] if lines else '')[:200]}", flush=True)
    counts = collections.Counter(results.values())
    bad = {k: v for k, v in results.items() if v not in GOOD}
    print(f"{len(results)} cases: " + ", ".join(f"{k} {counts[k]}" for k in ("clear", "ok", "UNCLEAR", "SILENT", "CRASH", "HANG", "LOSS")))
    if args.json:
        print(json.dumps({"cases": len(results), "counts": dict(counts), "bad": bad, "unimix": sys.modules["unimix"].__file__}))
    return results


if __name__ == "__main__":
    main()
