"""Shared helpers for the tests: tiny configs, weight randomisation, free ports, and a Hub cache laid out as a download
leaves it."""

import hashlib
import json
import os
import socket

import torch


TINY_UNET_CONFIG = dict(block_out_channels=(8, 16), layers_per_block=1, attention_depths=(1,), norm_num_groups=4)


def randomise_weights(model, seed=0, std=0.1):
    """Presets start with near-zero output layers; give every parameter a visible value so outputs carry information."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)
    return model


def random_tiny_predictor(seed):
    """A 4-channel, 1-block `SR3PredictorModel` with small random weights (its output differs visibly from bicubic)."""
    from sr3_diffusers import SR3PredictorModel

    return randomise_weights(SR3PredictorModel(num_channels=4, num_blocks=1), seed=seed, std=0.05).eval()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that no one listens on now (for a launcher's rendezvous or a test server)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def git_blob_sha1(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def write_hub_cache(folder, cache_dir, repo_id, commit_hash, extra_repo_files=None, skip=()):
    """Lay `folder` out in `cache_dir` as huggingface_hub leaves a real download: blobs named by etag (sha256 for LFS
    files, git sha1 otherwise), snapshot symlinks, refs/main and the trees/<commit>.json listing of the whole repo."""
    storage = cache_dir / ("models--" + repo_id.replace("/", "--"))
    snapshot = storage / "snapshots" / commit_hash
    (storage / "refs").mkdir(parents=True)
    (storage / "refs" / "main").write_text(commit_hash)
    (storage / "blobs").mkdir()
    files = {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}
    files.update(extra_repo_files or {})
    listing = {}
    for relative, content in files.items():
        if relative.endswith(".safetensors"):
            sha256 = hashlib.sha256(content).hexdigest()
            pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {len(content)}\n"
            etag = sha256
            listing[relative] = {"size": len(content), "blob_id": git_blob_sha1(pointer.encode()),
                                 "lfs_sha256": sha256, "lfs_size": len(content)}
        else:
            etag = git_blob_sha1(content)
            listing[relative] = {"size": len(content), "blob_id": etag}
        if relative in skip or relative in (extra_repo_files or {}):
            continue  # listed in the repo, not downloaded
        (storage / "blobs" / etag).write_bytes(content)
        link = snapshot / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(storage / "blobs" / etag, link.parent))
    (storage / "trees").mkdir()
    trees = {"format_version": 1, "files": dict(sorted(listing.items()))}
    (storage / "trees" / f"{commit_hash}.json").write_text(json.dumps(trees, indent=2))


class FakeHub:
    """The Hub's HTTP API as huggingface_hub's real `create_repo` / `upload_folder` / `create_commit` call it, answered
    in memory: every request is recorded, and each commit's files (all sent inline, upload mode "regular") are kept
    with their content. Install it with `huggingface_hub.set_client_factory(hub.client)`; thread-safe enough for
    `run_as_future` uploads (list appends)."""

    def __init__(self, user="someone"):
        self.user = user
        self.requests = []  # (method, path)
        self.commits = []  # (repo_id, commit message, {path: bytes})
        self.deleted = []  # (repo_id, commit message, [paths])
        self.repos = {}  # repo_id -> {path: bytes}, the files now in each repo

    def client(self):
        import httpx2
        from huggingface_hub.utils._http import hf_request_event_hook

        return httpx2.Client(transport=httpx2.MockTransport(self.handle), event_hooks={"request": [hf_request_event_hook]})

    def handle(self, request):
        import base64

        import httpx2

        path = request.url.path
        self.requests.append((request.method, path))
        if path == "/api/validate-yaml":
            return httpx2.Response(200, json={})
        if path == "/api/repos/create":
            name = json.loads(request.content)["name"]
            return httpx2.Response(200, json={"url": f"https://huggingface.co/{self.user}/{name}"})
        if "/preupload/" in path:
            files = json.loads(request.content)["files"]
            modes = [{"path": file["path"], "uploadMode": "regular", "shouldIgnore": False} for file in files]
            return httpx2.Response(200, json={"files": modes})
        if "/tree/" in path:  # the listing `upload_folder(delete_patterns=...)` reads
            repo_id, _, rest = path.split("/api/models/")[1].partition("/tree/")
            folder = rest.partition("/")[2]
            files = self.repos.get(repo_id, {})
            entries = [{"type": "file", "path": name, "size": len(content), "oid": git_blob_sha1(content)}
                       for name, content in sorted(files.items()) if name.startswith(folder)]
            return httpx2.Response(200, json=entries)
        if "/commit/" in path:
            repo_id = path.split("/api/models/")[1].split("/commit/")[0]
            lines = [json.loads(line) for line in request.content.decode().splitlines()]
            header = next(line["value"] for line in lines if line["key"] == "header")
            files = {line["value"]["path"]: base64.b64decode(line["value"]["content"]) for line in lines
                     if line["key"] == "file"}
            deleted = [line["value"]["path"] for line in lines if line["key"] == "deletedFile"]
            self.commits.append((repo_id, header["summary"], files))
            self.deleted.append((repo_id, header["summary"], deleted))
            repo = self.repos.setdefault(repo_id, {})
            for name in deleted:
                repo.pop(name, None)
            repo.update(files)
            oid = hashlib.sha1(str(len(self.commits)).encode()).hexdigest()
            return httpx2.Response(200, json={"commitUrl": f"https://huggingface.co/{repo_id}/commit/{oid}",
                                              "commitOid": oid, "pullRequestUrl": None})
        return httpx2.Response(404, json={"error": f"{path} is not faked"})
