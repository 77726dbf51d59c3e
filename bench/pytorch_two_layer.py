#!/usr/bin/env python3
"""The bundled example's training run, written in PyTorch, to compare whole runs.

Trains the same classifier as examples/two_layer_net.cpp with its Fashion-MNIST defaults (read
them in that file's defaults_for; pass flags here if they change): 784 -> 512 -> ReLU -> 10,
softmax cross-entropy plus reg * (|W1|^2 + |W2|^2), Adam (lr 1e-3) with a cosine schedule set at
each epoch start, batch 128, 20 epochs, 5000 training images held out for validation, inputs
standardised with the training set's per-pixel mean and std (floored at 1e-2), He-initialised
weights. Like the example it measures train (first 10000 rows) and validation accuracy after
every epoch, keeps the parameters of the best validation epoch, and reports test accuracy.

  /usr/bin/time -v /usr/bin/python3 bench/pytorch_two_layer.py --threads 2

Needs python3-numpy and python3-torch (Debian). The data: IDX .gz files in
/usr/share/datasets/fashion-mnist (Debian: dataset-fashion-mnist), read with numpy and gzip.
"""
import time

START = time.perf_counter()

import argparse  # noqa: E402
import gzip  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(data_dir, split):
    prefix = "train" if split == "train" else "t10k"
    x = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"))
    return x.reshape(len(x), -1).astype(np.float32) / 255.0, y.astype(np.int64)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--val-size", type=int, default=5000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--reg", type=float, default=1e-4)
    p.add_argument("--schedule", choices=["cosine", "constant"], default="cosine")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    t0 = time.perf_counter()
    x_train, y_train = load(args.data_dir, "train")
    x_test, y_test = load(args.data_dir, "test")
    held = np.zeros(len(x_train), dtype=bool)
    held[rng.choice(len(x_train), args.val_size, replace=False)] = True
    x_val, y_val = x_train[held], y_train[held]
    x_train, y_train = x_train[~held], y_train[~held]
    mean = x_train.mean(axis=0)
    std = np.maximum(x_train.std(axis=0), 1e-2)
    x_train, x_val, x_test = ((x - mean) / std for x in (x_train, x_val, x_test))
    X, Y = torch.from_numpy(np.ascontiguousarray(x_train)), torch.from_numpy(y_train)
    Xv, Yv = torch.from_numpy(np.ascontiguousarray(x_val)), torch.from_numpy(y_val)
    Xt, Yt = torch.from_numpy(np.ascontiguousarray(x_test)), torch.from_numpy(y_test)
    load_seconds = time.perf_counter() - t0

    D, H, C = X.shape[1], args.hidden, 10
    W1 = (torch.randn(D, H) * math.sqrt(2.0 / D)).requires_grad_()
    b1 = torch.zeros(H, requires_grad=True)
    W2 = (torch.randn(H, C) * math.sqrt(1.0 / H)).requires_grad_()
    b2 = torch.zeros(C, requires_grad=True)
    params = [W1, b1, W2, b2]
    opt = torch.optim.Adam(params, lr=args.lr)

    def scores(x):
        return torch.addmm(b2, torch.relu(torch.addmm(b1, x, W1)), W2)

    @torch.no_grad()
    def accuracy(x, y, batch=4096):
        correct = sum(int((scores(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
                      for i in range(0, len(x), batch))
        return correct / len(x)

    N, B = len(X), args.batch_size
    best, best_val, best_epoch = None, -1.0, 0
    t_train = time.perf_counter()
    for epoch in range(args.epochs):
        if args.schedule == "cosine":
            for g in opt.param_groups:
                g["lr"] = 0.5 * args.lr * (1 + math.cos(math.pi * epoch / args.epochs))
        start = time.perf_counter()
        order = torch.from_numpy(rng.permutation(N))
        loss_sum = 0.0
        for begin in range(0, N, B):
            rows = order[begin:begin + B]
            opt.zero_grad(set_to_none=False)
            loss = F.cross_entropy(scores(X[rows]), Y[rows]) + args.reg * (
                W1.pow(2).sum() + W2.pow(2).sum())
            loss.backward()
            opt.step()
            loss_sum += loss.item()
        train_acc, val_acc = accuracy(X[:10000], Y[:10000]), accuracy(Xv, Yv)
        steps = (N + B - 1) // B
        print(f"epoch {epoch + 1:>3}/{args.epochs}  loss {loss_sum / steps:.4f}  train "
              f"{train_acc:.4f}  val {val_acc:.4f}  {time.perf_counter() - start:.1f} s",
              flush=True)
        if val_acc > best_val:
            best_val, best_epoch = val_acc, epoch + 1
            best = [p.detach().clone() for p in params]
    train_seconds = time.perf_counter() - t_train
    with torch.no_grad():
        for p, b in zip(params, best):
            p.copy_(b)
    test_acc = accuracy(Xt, Yt)
    print(f"best epoch {best_epoch}: train {accuracy(X, Y):.4f}  val {accuracy(Xv, Yv):.4f}  "
          f"test {test_acc:.4f}")
    print(f"threads {args.threads}; load {load_seconds:.1f} s, train {train_seconds:.1f} s, "
          f"{time.perf_counter() - START:.1f} s from the first line of the script")


if __name__ == "__main__":
    main()
