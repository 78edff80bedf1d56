"""Self-contained code files for saved pipelines, so that Hub repos load without this package installed.

diffusers loads a component whose `model_index.json` entry is `[library, class_name]` from the file
`<component>/<library>.py` of the repo, and the pipeline itself from `<library>.py` at the repo's root when
`_class_name` is `[library, class_name]`, both only with `trust_remote_code=True` (see diffusers' "Custom pipelines"
and "Custom components" docs). `SR3Pipeline.save_pretrained` names the library `sr3_diffusers` and writes, in each of
those places, the one file `bundle_source` makes: the package modules the pipeline needs, found by following their
relative imports from the pipeline's own module, concatenated in dependency order with those imports removed. The
files are generated from the installed package at every save, never kept by hand, so they cannot drift from it.
"""

import ast
import importlib.metadata
import importlib.util
import sys
from pathlib import Path
from typing import Dict, List


PACKAGE = "sr3_diffusers"

# The file name of the bundle in the saved folder: `<library>.py`, the name diffusers looks for.
REMOTE_CODE_FILENAME = f"{PACKAGE}.py"

# The code file of the model folder that ships inside the package (and so exists only where the package is
# installed): it imports the installed pipeline rather than bundling a copy of it, so that
# `DiffusionPipeline.from_pretrained(<that folder>, trust_remote_code=True)` returns this package's own classes.
INSTALLED_PACKAGE_CODE = (
    f"# The model folder inside the installed {PACKAGE} package: its pipeline is the package's own.\n"
    f"from {PACKAGE} import SR3Pipeline  # noqa: F401\n"
)


def module_source(module_name: str) -> str:
    """The source text of a package module, read from its file (not imported)."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None:
        raise ValueError(f"Cannot find the source of module {module_name!r} to bundle.")
    with open(spec.origin, encoding="utf-8") as source_file:
        return source_file.read()


def _imported_package_modules(module_name: str, tree: ast.Module, at_top_level: bool) -> List[str]:
    """The package modules that `module_name` imports, relatively (`from ..models.unet_sr3 import X`) or absolutely:
    at module level (needed before the module runs), or else inside functions (needed only when they are called)."""
    package = module_name.rpartition(".")[0]
    top_level = {id(node) for node in tree.body}
    imported = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and _is_package_import(node) and (id(node) in top_level) == at_top_level:
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package) if node.level else node.module
            if importlib.util.find_spec(base).submodule_search_locations is not None:
                # a package's `__init__` re-exports more than the bundle needs (and the CLI's imports)
                raise ValueError(
                    f"Cannot bundle {module_name!r}: it imports from the package {base!r}; import from the module that "
                    "defines the names instead."
                )
            imported.append(base)
    return list(dict.fromkeys(imported))


def _is_package_import(node: ast.ImportFrom) -> bool:
    return bool(node.level) or (node.module or "").split(".")[0] == PACKAGE


def bundled_modules(root_module: str) -> List[str]:
    """`root_module` and every package module it needs, each after the modules it imports at module level (a
    depth-first topological order); a module imported only inside functions may come later."""
    ordered: List[str] = []
    visiting = set()

    def visit(module_name: str) -> None:
        if module_name in ordered:
            return
        if module_name in visiting:
            raise ValueError(f"Cannot bundle {root_module!r}: the package modules import each other in a circle "
                             f"through {module_name!r}.")
        visiting.add(module_name)
        tree = ast.parse(module_source(module_name))
        for dependency in _imported_package_modules(module_name, tree, at_top_level=True):
            visit(dependency)
        visiting.discard(module_name)
        ordered.append(module_name)
        for dependency in _imported_package_modules(module_name, tree, at_top_level=False):
            visit(dependency)

    visit(root_module)
    return ordered


def _strip_package_imports(module_name: str, source: str) -> str:
    """`source` without its imports of package modules (their names are defined earlier in the bundle); an import
    inside a function becomes `pass` so that the function body stays valid."""
    tree = ast.parse(source)
    lines = source.splitlines()
    for node in sorted(ast.walk(tree), key=lambda node: getattr(node, "lineno", 0), reverse=True):
        if not (isinstance(node, ast.ImportFrom) and _is_package_import(node)):
            continue
        indent = " " * node.col_offset
        replacement = [f"{indent}pass  # bundled: {ast.get_source_segment(source, node).splitlines()[0]}"] if node.col_offset else []
        lines[node.lineno - 1 : node.end_lineno] = replacement
    return "\n".join(lines)


def _top_level_names(tree: ast.Module) -> List[str]:
    names = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.extend(target.id for target in targets if isinstance(target, ast.Name))
    return names


def pipeline_code(pipeline_class: type) -> str:
    """The code file for a saved pipeline of class `pipeline_class`: the bundle of its module and what it needs, or,
    for a class that was itself loaded from such a file (with `trust_remote_code=True`), that file unchanged."""
    module_name = pipeline_class.__module__
    if module_name.split(".")[0] != PACKAGE:
        return Path(sys.modules[module_name].__file__).read_text(encoding="utf-8")
    return bundle_source(module_name)


def use_installed_package_code(folder: Path) -> None:
    """Replace the code files that `SR3Pipeline.save_pretrained` wrote into `folder` (at its root and in its
    components' folders) by the one root file `INSTALLED_PACKAGE_CODE`; diffusers then loads the components from the
    installed package, which `model_index.json` names as their library."""
    for code_file in Path(folder).glob(f"*/{REMOTE_CODE_FILENAME}"):
        code_file.unlink()
    Path(folder, REMOTE_CODE_FILENAME).write_text(INSTALLED_PACKAGE_CODE)


def bundle_source(root_module: str) -> str:
    """
    One self-contained Python file holding `root_module` and the package modules it needs (see `bundled_modules`).

    Raises:
        `ValueError`: if two bundled modules define the same top-level name, which one file cannot hold.
    """
    modules = bundled_modules(root_module)
    version = importlib.metadata.version(PACKAGE.replace("_", "-"))
    defined_in: Dict[str, str] = {}
    parts = [
        f"# Generated by {PACKAGE} {version} from its modules {', '.join(modules)}.\n"
        f"# Do not edit: `SR3Pipeline.save_pretrained` regenerates this file from the installed package.\n"
        f"# Load with `DiffusionPipeline.from_pretrained(<this repo>, trust_remote_code=True)`, or `pip install "
        f"{PACKAGE.replace('_', '-')}` and use `{PACKAGE}.SR3Pipeline.from_pretrained(<this repo>)`.\n"
    ]
    for module_name in modules:
        source = module_source(module_name)
        for name in _top_level_names(ast.parse(source)):
            if name != "__all__" and name in defined_in:
                raise ValueError(
                    f"Cannot bundle {root_module!r} into one file: `{name}` is defined in both {defined_in[name]} and "
                    f"{module_name}. Rename one of them."
                )
            defined_in[name] = module_name
        parts.append(f"\n# {'-' * 100}\n# {module_name}\n\n{_strip_package_imports(module_name, source).strip()}\n")
    return "".join(parts)
