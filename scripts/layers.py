"""Checks that the modules of src/ are layered: each imports only from modules before it.

The order is the one in the comment above the `mod` list in src/lib.rs (ORDER below). Every
`crate::...` path in a file (comments skipped, root re-exports such as `crate::TaskRunner`
resolved to their module) is an edge from the file's top-level module to the path's; an edge
to a module later in ORDER is printed as `UP:`. A module's own submodules are free to import
each other.

Run it from anywhere: `python3 scripts/layers.py`. It prints the upward edges, then
`<n> edges <m> upward`, and exits 1 if there is any upward edge.
"""
import os,re,sys
ROOT=os.path.join(os.path.dirname(os.path.abspath(__file__)),'..','src')
ORDER="sync panic id status error retry config runtime observe task queue runner schedule store durable step shell".split()
def modpath(f):
    rel=os.path.relpath(f,ROOT)[:-3].split('/')
    if rel[-1]=='mod': rel=rel[:-1]
    if rel==['lib']: return []
    return rel
files=[]
for d,_,fs in os.walk(ROOT):
    for f in fs:
        if f.endswith('.rs'): files.append(os.path.join(d,f))
# root re-exports
lib=open(ROOT+'/lib.rs').read()
reexp={}
for m in re.finditer(r'pub use (\w+)(?:::\w+)*::\{([^}]*)\}|pub use (\w+)(?:::\w+)*::(\w+);',lib):
    if m.group(1):
        for name in re.split(r'[,\s]+',m.group(2)):
            if name: reexp[name]=m.group(1)
    else:
        reexp[m.group(4)]=m.group(3)
def strip_comments(src):
    out=[]
    for line in src.split('\n'):
        t=line.strip()
        if t.startswith('//'): continue
        out.append(re.sub(r'//.*$','',line))
    return '\n'.join(out)
def expand(prefix, body):
    # body of a use group: split top-level commas
    items=[];depth=0;cur=''
    for ch in body:
        if ch=='{': depth+=1
        if ch=='}': depth-=1
        if ch==',' and depth==0: items.append(cur.strip()); cur=''; continue
        cur+=ch
    if cur.strip(): items.append(cur.strip())
    out=[]
    for it in items:
        m=re.match(r'([\w:]*?)(?:::)?\{(.*)\}$',it,re.S)
        if m: out+=expand(prefix+[p for p in m.group(1).split('::') if p], m.group(2))
        else: out.append(prefix+[p for p in it.split(' as ')[0].split('::') if p])
    return out
edges=set(); detail={}
for f in files:
    me=modpath(f)
    src=strip_comments(open(f).read())
    paths=[]
    for m in re.finditer(r'\bcrate::\{',src):
        i=m.end(); depth=1; j=i
        while depth: 
            if src[j]=='{': depth+=1
            elif src[j]=='}': depth-=1
            j+=1
        paths+=expand([],src[i:j-1])
    for m in re.finditer(r'\bcrate((?:::\w+)+)',src):
        paths.append(m.group(1).split('::')[1:])
    for p in paths:
        if not p: continue
        top=p[0]
        if top not in ORDER:
            top=reexp.get(top)
            if top is None: continue
        src_top=me[0] if me else 'lib'
        if top!=src_top:
            edges.add((src_top,top)); detail.setdefault((src_top,top),set()).add(os.path.relpath(f,ROOT))
bad=[(a,b) for a,b in edges if a!='lib' and ORDER.index(b)>ORDER.index(a)]
for a,b in sorted(bad): print(f"UP: {a} -> {b}   in {sorted(detail[(a,b)])}")
print(len(edges),'edges',len(bad),'upward')
sys.exit(1 if bad else 0)
